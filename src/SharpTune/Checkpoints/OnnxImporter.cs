using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Checkpoints;

/// <summary>What <see cref="OnnxImporter.Import"/> wrote and how it decided.</summary>
/// <param name="OutputDirectory">The Hugging Face-format model directory.</param>
/// <param name="Config">The config written to config.json, inferred from the graph.</param>
/// <param name="Mappings">For every key of model.safetensors taken from the graph, its ONNX source.</param>
/// <param name="IgnoredInitializers">ONNX initializers deliberately not imported (buffers, shape constants).</param>
/// <param name="AttentionHeadsSource">Where num_attention_heads came from (a Reshape node, or the hidden_size / 64 fallback).</param>
/// <param name="LayerNormEpsSource">Where layer_norm_eps came from (a LayerNormalization attribute, the Add before a Sqrt, or the default).</param>
/// <param name="PoolerInitialized">True when the graph had no pooler and <c>pooler.dense</c> was freshly initialised.</param>
/// <param name="Notes">Everything that was assumed rather than read; also written to config.json as <c>sharptune_notes</c>.</param>
/// <param name="Elapsed">Wall time of the import.</param>
public sealed record OnnxImportReport(
    string OutputDirectory,
    BertConfig Config,
    IReadOnlyList<OnnxKeyMapping> Mappings,
    IReadOnlyList<string> IgnoredInitializers,
    string AttentionHeadsSource,
    string LayerNormEpsSource,
    bool PoolerInitialized,
    IReadOnlyList<string> Notes,
    TimeSpan Elapsed);

/// <summary>
/// Turns a torch.onnx export of a BERT encoder (plus its WordPiece vocab.txt) into a Hugging Face model
/// directory: config.json, model.safetensors (plain <c>BertModel</c> keys), vocab.txt, tokenizer_config.json
/// and special_tokens_map.json. Weight names are mapped by <see cref="OnnxKeyMapping"/> rules (one table,
/// in OnnxKeyMap.cs); the architecture is read from tensor shapes and graph constants.
/// </summary>
public static class OnnxImporter
{
    private static readonly string[] SpecialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

    /// <summary>Seed of the pooler initialisation used when the export has no pooler, so imports are reproducible.</summary>
    public const long PoolerSeed = 0;

    /// <summary>
    /// Imports <paramref name="onnxPath"/> and <paramref name="vocabPath"/> into <paramref name="outDir"/>, which must
    /// not exist or be empty. Files are written to a temporary sibling directory first and moved into place at the
    /// end, so a failed import leaves nothing behind. Errors are <see cref="SharpTuneException"/>s naming the file
    /// and the key.
    /// </summary>
    public static OnnxImportReport Import(string onnxPath, string vocabPath, string outDir)
    {
        var clock = Stopwatch.StartNew();
        outDir = Path.GetFullPath(outDir);
        if (!File.Exists(onnxPath)) throw new SharpTuneException($"{onnxPath}: file not found (the ONNX model to import).");
        if (!File.Exists(vocabPath)) throw new SharpTuneException($"{vocabPath}: file not found (the vocab.txt of the ONNX model).");
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
            throw new SharpTuneException($"{outDir}: output directory already exists and is not empty; choose another or delete it.");

        var notes = new List<string>();
        string[] vocab = ReadVocab(vocabPath);
        var graph = OnnxGraph.Load(onnxPath);
        var (mappings, ignored) = OnnxKeyMap.Map(graph, onnxPath);
        var shapes = mappings.ToDictionary(m => m.Key, m => HfShape(graph.Constant(m.OnnxName)!, m.Transposed));

        long[] Shape(string key) => shapes.TryGetValue(key, out var s) ? s
            : throw new SharpTuneException($"{onnxPath}: no tensor maps to '{key}', which the architecture is read from.");
        long[] words = Shape("embeddings.word_embeddings.weight");
        int hidden = (int)words[1];
        int layers = shapes.Keys.Where(k => k.StartsWith("encoder.layer.", StringComparison.Ordinal))
            .Select(k => int.Parse(k.Split('.')[2], CultureInfo.InvariantCulture)).DefaultIfEmpty(-1).Max() + 1;
        if (layers == 0) throw new SharpTuneException($"{onnxPath}: no encoder.layer.* tensors found; is this a BERT export?");
        var (heads, headsSource) = InferHeads(graph, hidden, onnxPath);
        var (eps, epsSource) = InferLayerNormEps(graph);
        if (headsSource.StartsWith("assumed", StringComparison.Ordinal)) notes.Add("num_attention_heads " + headsSource);
        if (epsSource.StartsWith("assumed", StringComparison.Ordinal)) notes.Add("layer_norm_eps " + epsSource);
        if (!graph.Nodes.Any(n => n.OpType == "Erf"))
            notes.Add("hidden_act assumed gelu: the graph has no Erf node (exact gelu); check the export's activation.");

        if (vocab.Length > words[0])
            throw new SharpTuneException($"{vocabPath}: {vocab.Length} tokens but the model's word embeddings have {words[0]} rows.");
        if (vocab.Length < words[0]) notes.Add($"vocab.txt has {vocab.Length} tokens for {words[0]} embedding rows; the extra rows are never used.");

        var config = new BertConfig
        {
            ModelType = "bert",
            VocabSize = (int)words[0],
            HiddenSize = hidden,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            IntermediateSize = (int)Shape("encoder.layer.0.intermediate.dense.weight")[0],
            HiddenAct = "gelu",
            MaxPositionEmbeddings = (int)Shape("embeddings.position_embeddings.weight")[0],
            TypeVocabSize = (int)Shape("embeddings.token_type_embeddings.weight")[0],
            LayerNormEps = eps,
            PadTokenId = Array.IndexOf(vocab, "[PAD]"),
        };
        config.Validate(onnxPath);

        var expected = BertKeys.Expected(config);
        bool poolerInitialized = !shapes.ContainsKey("pooler.dense.weight") && !shapes.ContainsKey("pooler.dense.bias");
        if (poolerInitialized)
            notes.Add($"the export has no pooler: pooler.dense was initialised with weight ~ N(0, {config.InitializerRange.ToString(CultureInfo.InvariantCulture)}) (seed {PoolerSeed}) and zero bias; train it before using pooled outputs.");
        CheckKeys(onnxPath, expected, shapes, poolerInitialized);

        config = config with
        {
            Extra = new Dictionary<string, JsonElement>
            {
                ["architectures"] = JsonSerializer.SerializeToElement(new[] { "BertModel" }),
                ["sharptune_source"] = JsonSerializer.SerializeToElement(Path.GetFileName(onnxPath)),
            },
        };
        if (notes.Count > 0) config.Extra!["sharptune_notes"] = JsonSerializer.SerializeToElement(notes);

        StagedDirectory.Write(outDir, temp =>
        {
            WriteWeights(temp, graph, mappings, expected, poolerInitialized, config, Path.GetFileName(onnxPath));
            File.WriteAllText(Path.Combine(temp, "vocab.txt"), string.Join('\n', vocab) + "\n", new UTF8Encoding(false));
            WriteTokenizerFiles(temp, vocab, config);
        }, overwrite: false);
        return new OnnxImportReport(outDir, config, mappings, ignored, headsSource, epsSource, poolerInitialized, notes, clock.Elapsed);
    }

    private static long[] HfShape(OnnxTensor tensor, bool transposed) =>
        transposed ? [.. tensor.Dims.Reverse()] : tensor.Dims;

    private static void CheckKeys(string onnxPath, IReadOnlyDictionary<string, long[]> expected, Dictionary<string, long[]> found, bool poolerInitialized)
    {
        var missing = expected.Keys.Where(k => !found.ContainsKey(k) && !(poolerInitialized && k.StartsWith("pooler.", StringComparison.Ordinal))).ToList();
        var unexpected = found.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        var misshaped = found.Where(kv => expected.TryGetValue(kv.Key, out var shape) && !shape.SequenceEqual(kv.Value))
            .Select(kv => $"{kv.Key}: file [{string.Join(", ", kv.Value)}] vs model [{string.Join(", ", expected[kv.Key])}]").ToList();
        if (missing.Count + unexpected.Count + misshaped.Count == 0) return;
        var message = new StringBuilder($"{onnxPath}: the graph does not hold a complete BertModel.");
        if (missing.Count > 0) message.Append(" Missing keys: ").Append(string.Join(", ", missing)).Append('.');
        if (unexpected.Count > 0) message.Append(" Unexpected keys: ").Append(string.Join(", ", unexpected)).Append('.');
        if (misshaped.Count > 0) message.Append(" Mis-shaped keys: ").Append(string.Join("; ", misshaped)).Append('.');
        throw new SharpTuneException(message.ToString());
    }

    // The head count is the second-to-last entry of the shape that Reshape splits q/k/v into: [batch, seq, heads, head_dim].
    private static (int Heads, string Source) InferHeads(OnnxGraph graph, int hidden, string onnxPath)
    {
        foreach (var reshape in graph.Nodes.Where(n => n.OpType == "Reshape" && n.Inputs.Length == 2))
        {
            long?[] target = ConstantParts(graph, reshape.Inputs[1]);
            if (target.Length == 4 && target[2] is long heads && target[3] is long headDim && heads > 0 && heads * headDim == hidden)
                return ((int)heads, $"graph: Reshape '{reshape.Name}' splits hidden {hidden} into {heads} heads x {headDim}");
        }
        if (hidden % 64 != 0)
            throw new SharpTuneException($"{onnxPath}: no Reshape in the graph splits hidden {hidden} into heads, and {hidden} is not a multiple of 64; the head count cannot be inferred.");
        return (hidden / 64, $"assumed hidden_size / 64 = {hidden / 64}: no Reshape in the graph splits the hidden size into heads");
    }

    // The values of a shape tensor built from constants, possibly through a Concat; null for the dynamic parts.
    private static long?[] ConstantParts(OnnxGraph graph, string value)
    {
        if (graph.Constant(value) is { DataType: OnnxDataType.Int64 or OnnxDataType.Int32 } tensor)
            return [.. tensor.Integers().Select(v => (long?)v)];
        if (graph.Producer(value) is { OpType: "Concat" } concat)
            return [.. concat.Inputs.SelectMany(input => graph.Constant(input) is { DataType: OnnxDataType.Int64 or OnnxDataType.Int32 } part
                ? part.Integers().Select(v => (long?)v)
                : [null])];
        return [];
    }

    private static (double Eps, string Source) InferLayerNormEps(OnnxGraph graph)
    {
        if (graph.Nodes.FirstOrDefault(n => n.OpType == "LayerNormalization") is { } layerNorm)
        {
            float eps = layerNorm.Attribute("epsilon")?.Float ?? 1e-5f; // the operator's default
            return (AsDouble(eps), $"graph: LayerNormalization '{layerNorm.Name}' epsilon");
        }
        // Decomposed LayerNorm: (x - mean) / Sqrt(var + eps).
        foreach (var sqrt in graph.Nodes.Where(n => n.OpType == "Sqrt"))
        {
            if (graph.Producer(sqrt.Inputs[0]) is not { OpType: "Add" } add) continue;
            foreach (string input in add.Inputs)
                if (graph.Constant(input) is { DataType: OnnxDataType.Float, ElementCount: 1 } eps)
                    return (AsDouble(eps.Floats()[0]), $"graph: Add '{add.Name}' before Sqrt '{sqrt.Name}' (decomposed LayerNorm)");
        }
        double fallback = new BertConfig().LayerNormEps;
        return (fallback, $"assumed {fallback.ToString(CultureInfo.InvariantCulture)} (BERT's default): no LayerNorm epsilon found in the graph");
    }

    // 1e-12f widens to 9.9999999600419720e-13; keep the decimal value the exporter wrote.
    private static double AsDouble(float value) =>
        double.Parse(value.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private static string[] ReadVocab(string vocabPath)
    {
        string text = File.ReadAllText(vocabPath, Encoding.UTF8);
        string[] lines = text.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        if (lines.Length > 0 && lines[^1].Length == 0) lines = lines[..^1];
        for (int i = 0; i < lines.Length; i++)
            if (lines[i].Length == 0) throw new SharpTuneException($"{vocabPath}:{i + 1}: empty line in the vocabulary (one token per line).");
        foreach (string token in SpecialTokens)
            if (!lines.Contains(token)) throw new SharpTuneException($"{vocabPath}: special token {token} is not in the vocabulary.");
        return lines;
    }

    private static void WriteWeights(string directory, OnnxGraph graph, List<OnnxKeyMapping> mappings, IReadOnlyDictionary<string, long[]> expected,
        bool initializePooler, BertConfig config, string source)
    {
        TorchRuntime.EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>();
        foreach (var mapping in mappings)
        {
            OnnxTensor onnx = graph.Constant(mapping.OnnxName)!;
            var tensor = torch.empty(onnx.Dims, ScalarType.Float32);
            if (onnx.ElementCount > 0) tensor.bytes = onnx.Data;
            tensors[mapping.Key] = mapping.Transposed ? tensor.t() : tensor; // safetensors writes it contiguous
        }
        if (initializePooler)
        {
            var generator = new torch.Generator((ulong)PoolerSeed);
            using Scalar range = config.InitializerRange.ToScalar();
            tensors["pooler.dense.weight"] = torch.randn(expected["pooler.dense.weight"], generator: generator).mul_(range);
            tensors["pooler.dense.bias"] = torch.zeros(expected["pooler.dense.bias"]);
        }
        HfModelDirectory.Write(directory, config.ToJson(), tensors, metadata: new Dictionary<string, string> { ["format"] = "pt", ["source"] = "onnx:" + source });
    }

    private static void WriteTokenizerFiles(string directory, string[] vocab, BertConfig config)
    {
        // An uncased vocabulary has no token that lower-casing would change, apart from the bracketed special
        // tokens (upper-case letters without a lower-case form, such as ℝ, occur in uncased vocabularies).
        bool lowerCase = !vocab.Any(t => !(t.StartsWith('[') && t.EndsWith(']')) && t != t.ToLowerInvariant());
        var special = new JsonObject
        {
            ["unk_token"] = "[UNK]", ["sep_token"] = "[SEP]", ["pad_token"] = "[PAD]", ["cls_token"] = "[CLS]", ["mask_token"] = "[MASK]",
        };
        var tokenizer = new JsonObject
        {
            ["tokenizer_class"] = "BertTokenizer",
            ["do_lower_case"] = lowerCase,
            ["model_max_length"] = config.MaxPositionEmbeddings,
        };
        foreach (var (key, value) in special) tokenizer[key] = value!.DeepClone();
        var options = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), tokenizer.ToJsonString(options));
        File.WriteAllText(Path.Combine(directory, "special_tokens_map.json"), special.ToJsonString(options));
    }
}
