using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>;
using SharpTune.Export;
using SharpTune.Heads;
using SharpTune.Lora;
using SharpTune.Models;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Fixtures;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpTune.Tests.Export;

/// <summary>
/// Export → ONNX Runtime against SharpTune's own forward on the HF fixtures of every exportable architecture and both
/// task types: the same padded batches go through both, two batch sizes and sequence lengths through one session
/// (the dynamic axes), and the logits must agree within 1e-4.
/// </summary>
public sealed class OnnxExportTests(ITestOutputHelper output) : IDisposable
{
    private const double Tolerance = 1e-4;
    private readonly string _folder = Directory.CreateTempSubdirectory("sharptune-onnx-export-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public static readonly string[] Exportable = ["bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2"];

    public static IEnumerable<object[]> ArchitecturesAndTasks =>
        Exportable.SelectMany(a => new[] { new object[] { a, "sequence" }, [a, "token"] });

    // Two batches of different sizes and lengths: rows of 7 and 4 tokens, then of 11, 5 and 9.
    private static readonly int[][] Batches = [[7, 4], [11, 5, 9]];

    [Theory]
    [MemberData(nameof(ArchitecturesAndTasks))]
    public void Onnx_runtime_logits_equal_sharptune_logits_on_padded_batches_of_two_shapes(string architecture, string task)
    {
        string directory = task == "token" ? HfFixtures.TokenDirectory(architecture) : HfFixtures.Directory(architecture);
        using var model = TaskModel.Load(directory);
        string path = Path.Combine(_folder, $"{architecture}-{task}.onnx");
        var report = model.ExportOnnx(path);

        bool tokenTypes = architecture is "bert" or "electra";
        Assert.Equal(tokenTypes ? ["input_ids", "attention_mask", "token_type_ids"] : ["input_ids", "attention_mask"], report.Inputs);
        Assert.Equal("logits", report.Output);
        double diff = MaxDifference(model.Model, path, out int[] firstShape);
        Assert.Equal(task == "token" ? 3 : 2, firstShape.Length);
        output.WriteLine($"{architecture} {task}: max |Δ logits| {diff:E2}");
        Assert.True(diff <= Tolerance, $"{architecture} {task}: ONNX Runtime's logits differ from SharpTune's by {diff:E3}");
    }

    [Fact]
    public void Lora_adapters_are_merged_into_the_export_and_the_model_keeps_them()
    {
        using var model = TaskModel.Load(HfFixtures.Directory("bert"));
        string path = Path.Combine(_folder, "base.onnx");
        model.ExportOnnx(path);
        LoraInjector.Inject(model.Model.Encoder, new LoraOptions(Rank: 4, Alpha: 8));
        using (torch.no_grad())
            foreach (var (name, parameter) in model.Model.named_parameters())
                if (name.Contains("lora_B", StringComparison.Ordinal)) parameter.normal_(0, 0.5);
        string merged = Path.Combine(_folder, "lora.onnx");
        model.ExportOnnx(merged);

        Assert.True(LoraInjector.HasAdapters(model.Model)); // exporting did not merge the live model
        double diff = MaxDifference(model.Model, merged, out _);
        double fromBase = MaxDifference(model.Model, path, out _);
        output.WriteLine($"with adapters: {diff:E2}; the export without them differs by {fromBase:E2}");
        Assert.True(diff <= Tolerance, $"merged export differs by {diff:E3}");
        Assert.True(fromBase > 1e-3, $"the adapters changed nothing ({fromBase:E3}): the test cannot tell merged from unmerged");
    }

    [Theory]
    [InlineData("bert", "mean")]
    [InlineData("bert", "pooled")]
    [InlineData("distilbert", "cls")]
    [InlineData("electra", "token")]
    public void A_head_other_than_the_architectures_own_exports_too(string architecture, string head)
    {
        torch.manual_seed(3);
        using var encoder = PretrainedEncoder.Load(HfFixtures.Directory(architecture));
        var classifier = new SequenceClassifier(encoder.Model, HeadRegistry.Create(head, encoder.Model.Config.HiddenSize, 4));
        classifier.eval();
        string path = Path.Combine(_folder, $"{architecture}-{head}.onnx");
        OnnxExporter.Export(classifier, path);
        double diff = MaxDifference(classifier, path, out _);
        output.WriteLine($"{architecture} with {head}: {diff:E2}");
        Assert.True(diff <= Tolerance, $"{architecture} with head {head}: differs by {diff:E3}");
    }

    [Fact]
    public void The_bare_encoder_of_a_model_directory_exports_last_hidden_state()
    {
        string path = Path.Combine(_folder, "encoder.onnx");
        var report = OnnxExporter.ExportDirectory(HfFixtures.Directory("roberta"), Path.Combine(_folder, "task.onnx"));
        Assert.Equal("logits", report.Output);
        // A bare encoder directory: the fixture's weights without a task class.
        string bare = Path.Combine(_folder, "bare");
        Directory.CreateDirectory(bare);
        foreach (string file in Directory.GetFiles(HfFixtures.Directory("roberta"))) File.Copy(file, Path.Combine(bare, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(bare, "config.json")))!.AsObject();
        config["architectures"] = new JsonArray("RobertaModel");
        File.WriteAllText(Path.Combine(bare, "config.json"), config.ToJsonString());
        report = OnnxExporter.ExportDirectory(bare, path);
        Assert.Equal("last_hidden_state", report.Output);

        using var encoder = PretrainedEncoder.Load(bare);
        double diff = MaxEncoderDifference(encoder.Model, path);
        output.WriteLine($"roberta encoder: {diff:E2}");
        Assert.True(diff <= Tolerance, $"last_hidden_state differs by {diff:E3}");
    }

    // The DeBERTa options the fixture (shared keys, both attention types, 32 buckets, no token types) leaves out:
    // separate position projections, one attention type alone, log buckets within the test's lengths (8 buckets: exact
    // up to ±4), absolute positions, token types, a narrower embedding with embed_proj, no relative LayerNorm.
    [Theory]
    [InlineData("c2p", false, 8, true, 2, 16, "layer_norm")]
    [InlineData("p2c", false, 8, false, 0, null, "none")]
    [InlineData("p2c|c2p", true, -1, true, 2, 16, "layer_norm")]
    public void Deberta_v2_variants_export_exactly(string attentionTypes, bool shareKeys, int buckets, bool absolutePositions, int typeVocab, int? embeddingSize, string relativeNorm)
    {
        torch.manual_seed(5);
        var config = new DebertaV2Config
        {
            VocabSize = 99, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 37, MaxPositionEmbeddings = 64, InitializerRange = 0.3,
            MaxRelativePositions = 32, PositionBuckets = buckets, PosAttType = attentionTypes.Split('|'), ShareAttKey = shareKeys,
            PositionBiasedInput = absolutePositions, TypeVocabSize = typeVocab, EmbeddingSize = embeddingSize, NormRelEbd = relativeNorm,
        };
        var classifier = new SequenceClassifier(new DebertaV2Model(config), ContextPoolerHead.For(config, 3));
        using (torch.no_grad())
            foreach (var (name, parameter) in classifier.named_parameters())
                if (name.EndsWith("LayerNorm.weight", StringComparison.Ordinal)) parameter.normal_(1, 0.2); // not the identity
        classifier.eval();
        string path = Path.Combine(_folder, "deberta-variant.onnx");
        var report = OnnxExporter.Export(classifier, path);
        Assert.Equal(typeVocab > 0, report.Inputs.Contains("token_type_ids"));
        double diff = MaxDifference(classifier, path, out _);
        output.WriteLine($"deberta-v2 {attentionTypes} share={shareKeys} buckets={buckets}: {diff:E2}");
        Assert.True(diff <= Tolerance, $"deberta-v2 variant differs by {diff:E3}");
    }

    [Fact]
    public void A_custom_head_without_a_graph_is_refused_by_name()
    {
        using var encoder = PretrainedEncoder.Load(HfFixtures.Directory("bert"));
        var classifier = new SequenceClassifier(encoder.Model, new SquaredHead(encoder.Model.Config.HiddenSize));
        var error = Assert.Throws<SharpTuneException>(() => OnnxExporter.Export(classifier, Path.Combine(_folder, "custom.onnx")));
        Assert.Contains(nameof(SquaredHead), error.Message);
        Assert.False(classifier.Head.HasOnnxExport); // what --runtime auto reads to stay with TorchSharp
        Assert.All(new[] { "cls", "pooled", "mean", "token" }, name => Assert.True(HeadRegistry.Create(name, 32, 2).HasOnnxExport, name));
    }

    [Theory]
    [InlineData(OnnxWeightFormat.Float16, 1e-2)]
    [InlineData(OnnxWeightFormat.Int8, 0.1)]
    public void Smaller_weight_formats_save_the_bytes_they_promise_and_keep_logits_close(OnnxWeightFormat format, double tolerance)
    {
        using var model = TaskModel.Load(HfFixtures.Directory("bert"));
        string full = Path.Combine(_folder, "fp32.onnx"), small = Path.Combine(_folder, $"{format}.onnx");
        long fullBytes = model.ExportOnnx(full).Bytes;
        long smallBytes = model.ExportOnnx(small, new OnnxExportOptions(format)).Bytes;
        // float16: 2 of 4 bytes of every float parameter; int8: 3 of 4 bytes of every Linear weight (embeddings stay
        // float32), less a float scale and an int8 zero point per output column and the quantisation nodes (about 500
        // bytes per Linear layer, much of this tiny model's saving: hence 0.75).
        long saving = format == OnnxWeightFormat.Float16
            ? 2 * model.Model.parameters().Sum(p => p.numel())
            : model.Model.named_parameters().Where(p => p.parameter.dim() == 2 && !p.name.Contains("embeddings", StringComparison.Ordinal)).Sum(p => 3 * p.parameter.numel() - 5 * p.parameter.shape[0]);
        double diff = MaxDifference(model.Model, small, out _);
        output.WriteLine($"{format}: {smallBytes} bytes vs {fullBytes} float32 (expected saving {saving}); max |Δ logits| {diff:E2}");
        Assert.True(fullBytes - smallBytes > 0.75 * saving, $"{format}: {smallBytes} bytes vs {fullBytes}, expected about {saving} fewer");
        Assert.True(diff <= tolerance, $"{format}: logits differ by {diff:E3}");
        Assert.True(diff > 0, $"{format}: logits identical to float32's: were the weights converted at all?");
    }

    [Theory]
    [MemberData(nameof(TokenArchitectures))]
    public void Int8_token_logits_stay_close_to_float32_on_every_architecture(string architecture)
    {
        using var model = TaskModel.Load(HfFixtures.TokenDirectory(architecture));
        string path = Path.Combine(_folder, $"{architecture}-token.int8.onnx");
        model.ExportOnnx(path, new OnnxExportOptions(OnnxWeightFormat.Int8));
        double diff = MaxDifference(model.Model, path, out int[] firstShape);
        output.WriteLine($"{architecture} token int8: max |Δ logits| {diff:E2}");
        Assert.Equal(3, firstShape.Length); // [batch, sequence, tags]: per-token logits
        Assert.True(diff <= 0.1, $"{architecture}: int8 token logits differ from float32 by {diff:E3}");
        Assert.True(diff > 0, $"{architecture}: int8 logits identical to float32's: were the weights quantised at all?");
    }

    public static TheoryData<string> TokenArchitectures() => new(Exportable);

    [Fact]
    public void Cli_exports_a_run_and_names_a_missing_directory()
    {
        var (console, writer) = TrainCliHarness.Console();
        string path = Path.Combine(_folder, "cli.onnx");
        int exit = SharpTune.Cli.CliApp.Run(["export-onnx", "--model", HfFixtures.TokenDirectory("distilbert"), "--out", path], console);
        Assert.Equal(0, exit);
        Assert.Contains("output: logits [batch, sequence, ", writer.ToString());
        Assert.True(File.Exists(path));

        var (errors, errorWriter) = TrainCliHarness.Console();
        string missing = Path.Combine(_folder, "no-such-run");
        exit = SharpTune.Cli.CliApp.Run(["export-onnx", "--model", missing, "--out", path], console, errors);
        Assert.Equal(1, exit);
        Assert.Contains(missing, errorWriter.ToString());

        (errors, errorWriter) = TrainCliHarness.Console();
        exit = SharpTune.Cli.CliApp.Run(["export-onnx", "--model", HfFixtures.Directory("bert"), "--out", path, "--weights", "int4"], console, errors);
        Assert.Equal(1, exit);
        Assert.Contains("--weights 'int4'", errorWriter.ToString());
    }

    /// <summary>A head with no ONNX graph: x² summed into one logit.</summary>
    private sealed class SquaredHead(int hiddenSize) : Head("squared")
    {
        public override HeadInput Input => HeadInput.FirstToken;
        public override int Outputs => 1;
        public override Tensor forward(Tensor features, Tensor? attentionMask) => (features * features).sum(1, keepdim: true) / hiddenSize;
    }

    /// <summary>A padded batch: random ids (never the pad id) for real tokens, the pad id, mask 0 and type 0 after them.</summary>
    internal sealed record Batch(long[] Ids, long[] Mask, long[] Types, int Rows, int Length);

    internal static Batch MakeBatch(EncoderConfig config, int[] lengths, int seed)
    {
        var random = new Random(seed);
        int rows = lengths.Length, length = lengths.Max();
        long[] ids = new long[rows * length], mask = new long[rows * length], types = new long[rows * length];
        int typeCount = config switch { BertConfig bert => bert.TypeVocabSize, DebertaV2Config deberta => deberta.TypeVocabSize, _ => 1 };
        for (int r = 0; r < rows; r++)
            for (int t = 0; t < length; t++)
            {
                int i = r * length + t;
                if (t >= lengths[r]) { ids[i] = config.PadTokenId; continue; }
                long id;
                do id = random.Next(3, config.VocabSize);
                while (id == config.PadTokenId);
                ids[i] = id;
                mask[i] = 1;
                types[i] = typeCount > 1 && t >= lengths[r] / 2 ? 1 : 0;
            }
        return new Batch(ids, mask, types, rows, length);
    }

    internal static float[] RunSession(InferenceSession session, Batch batch, string outputName, out int[] shape)
    {
        int[] dims = [batch.Rows, batch.Length];
        var feeds = new List<NamedOnnxValue>();
        foreach (string name in session.InputMetadata.Keys)
        {
            long[] data = name switch { "input_ids" => batch.Ids, "attention_mask" => batch.Mask, "token_type_ids" => batch.Types, _ => throw new InvalidOperationException(name) };
            feeds.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor(data, dims)));
        }
        using var results = session.Run(feeds);
        var result = results.Single(r => r.Name == outputName).AsTensor<float>();
        shape = result.Dimensions.ToArray();
        return result.ToArray();
    }

    private static double MaxDifference(SequenceClassifier model, string path, out int[] firstShape)
    {
        using var session = new InferenceSession(path, new SessionOptions { IntraOpNumThreads = 1 });
        bool tokenTypes = session.InputMetadata.ContainsKey("token_type_ids");
        double worst = 0;
        firstShape = [];
        for (int b = 0; b < Batches.Length; b++)
        {
            var batch = MakeBatch(model.Encoder.Config, Batches[b], seed: b);
            float[] onnx = RunSession(session, batch, "logits", out int[] shape);
            if (b == 0) firstShape = shape;
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            model.eval();
            long[] dims = [batch.Rows, batch.Length];
            Tensor logits = model.call(torch.tensor(batch.Ids, dims), tokenTypes ? torch.tensor(batch.Types, dims) : null, torch.tensor(batch.Mask, dims));
            Assert.Equal(logits.shape, shape.Select(d => (long)d).ToArray());
            float[] expected = logits.contiguous().data<float>().ToArray();
            worst = Math.Max(worst, expected.Zip(onnx, (e, o) => Math.Abs(e - o)).Max());
        }
        return worst;
    }

    private static double MaxEncoderDifference(Encoder encoder, string path)
    {
        using var session = new InferenceSession(path, new SessionOptions { IntraOpNumThreads = 1 });
        bool tokenTypes = session.InputMetadata.ContainsKey("token_type_ids");
        double worst = 0;
        for (int b = 0; b < Batches.Length; b++)
        {
            var batch = MakeBatch(encoder.Config, Batches[b], seed: 10 + b);
            float[] onnx = RunSession(session, batch, "last_hidden_state", out _);
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            long[] dims = [batch.Rows, batch.Length];
            var result = encoder.call(torch.tensor(batch.Ids, dims), tokenTypes ? torch.tensor(batch.Types, dims) : null, torch.tensor(batch.Mask, dims));
            float[] expected = result.LastHiddenState.contiguous().data<float>().ToArray();
            Assert.Equal(expected.Length, onnx.Length);
            worst = Math.Max(worst, expected.Zip(onnx, (e, o) => Math.Abs(e - o)).Max());
        }
        return worst;
    }
}
