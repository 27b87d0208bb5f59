using System.Text.Json.Nodes;
using SharpTune.Tests.Fixtures;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

/// <summary>
/// Hugging Face's own Rust tokenizer (through Tokenizers.DotNet) over the tokenizer.json that transformers'
/// converters (XLMRobertaConverter, DebertaV2Converter in convert_slow_tokenizer.py, 4.45) build from the fixture
/// .model files; without a post-processor, so that Encode returns the pieces only. Test-only.
/// </summary>
internal static class SentencePieceOracle
{
    /// <summary>The .model file of a fixture architecture and whether it uses fairseq ids.</summary>
    public static (string Path, bool FairseqIds) ModelFile(string architecture) => architecture switch
    {
        "xlm-roberta" => (Path.Combine(HfFixtures.Directory(architecture), "sentencepiece.bpe.model"), true),
        "deberta-v2" => (Path.Combine(HfFixtures.Directory(architecture), "spm.model"), false),
        _ => throw new ArgumentException($"no SentencePiece fixture for {architecture}", nameof(architecture)),
    };

    private static readonly Dictionary<string, (Tokenizers.DotNet.Tokenizer Rust, JsonObject Json)> Loaded = [];

    /// <summary>The converted tokenizer.json of <paramref name="architecture"/>.</summary>
    public static JsonObject TokenizerJson(string architecture) => Load(architecture).Json;

    /// <summary>HF Rust ids of <paramref name="text"/> (no special tokens added).</summary>
    public static int[] Encode(string architecture, string text)
    {
        lock (Loaded) return Load(architecture).Rust.Encode(text).Select(id => (int)id).ToArray();
    }

    private static (Tokenizers.DotNet.Tokenizer Rust, JsonObject Json) Load(string architecture)
    {
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(architecture, out var loaded))
            {
                var json = Convert(architecture);
                string path = Path.Combine(Path.GetTempPath(), $"sharptune-spm-oracle-{architecture}-{Environment.ProcessId}.json");
                File.WriteAllText(path, json.ToJsonString());
                // No try/catch: if the native tokenizer cannot load the file, every oracle test fails.
                Loaded[architecture] = loaded = (new Tokenizers.DotNet.Tokenizer(path), json);
            }
            return loaded;
        }
    }

    private static JsonObject Convert(string architecture)
    {
        var (path, fairseq) = ModelFile(architecture);
        var model = SentencePieceModelFile.Parse(File.ReadAllBytes(path), path);
        var vocab = new JsonArray();
        void Add(string piece, double score) => vocab.Add(new JsonArray(piece, score));
        var added = new JsonArray();
        void Special(string content, int id) => added.Add(new JsonObject
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        });
        int unkId;
        JsonArray normalizers;
        JsonNode preTokenizer;
        var metaspace = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "always", ["split"] = true };
        var precompiled = new JsonObject { ["type"] = "Precompiled", ["precompiled_charsmap"] = System.Convert.ToBase64String(model.PrecompiledCharsMap) };
        if (fairseq)
        {
            // XLMRobertaConverter.vocab: the fairseq specials, then the pieces from index 3, then <mask>.
            Add("<s>", 0); Add("<pad>", 0); Add("</s>", 0); Add("<unk>", 0);
            foreach (var piece in model.Pieces.Skip(3)) Add(piece.Piece, piece.Score);
            Add("<mask>", 0);
            unkId = 3;
            Special("<s>", 0); Special("<pad>", 1); Special("</s>", 2); Special("<unk>", 3); Special("<mask>", vocab.Count - 1);
            // SpmConverter.normalizer (XLM-R keeps the default).
            normalizers = [precompiled, new JsonObject { ["type"] = "Strip", ["strip_left"] = false, ["strip_right"] = true },
                Replace("▁")];
            preTokenizer = metaspace;
        }
        else
        {
            foreach (var piece in model.Pieces) Add(piece.Piece, piece.Score);
            unkId = model.Pieces.ToList().FindIndex(p => p.Type == SentencePieceType.Unknown);
            for (int id = 0; id < model.Pieces.Count; id++)
                if (model.Pieces[id].Type is SentencePieceType.Control or SentencePieceType.Unknown) Special(model.Pieces[id].Piece, id);
            Special("[MASK]", model.Pieces.Count);
            // DebertaV2Converter.normalizer (do_lower_case false) and pre_tokenizer (split_by_punct false).
            normalizers = [new JsonObject { ["type"] = "Strip", ["strip_left"] = true, ["strip_right"] = true }, precompiled, Replace(" ")];
            preTokenizer = new JsonObject { ["type"] = "Sequence", ["pretokenizers"] = new JsonArray(metaspace) };
        }
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject { ["type"] = "Sequence", ["normalizers"] = normalizers },
            ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "always", ["split"] = true },
            ["model"] = new JsonObject { ["type"] = "Unigram", ["unk_id"] = unkId, ["vocab"] = vocab, ["byte_fallback"] = false },
        };

        static JsonObject Replace(string content) =>
            new() { ["type"] = "Replace", ["pattern"] = new JsonObject { ["Regex"] = " {2,}" }, ["content"] = content };
    }

    /// <summary>The texts of data/spam-sample/train.csv in the repository.</summary>
    public static List<string> SpamSample()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, "data", "spam-sample", "train.csv");
            if (File.Exists(Path.Combine(dir.FullName, "Directory.Build.props")) && File.Exists(path))
                return Csv.ReadRecords(path).Skip(1).Select(r => r[0]).ToList();
        }
        throw new FileNotFoundException($"data/spam-sample/train.csv not found above {AppContext.BaseDirectory}.");
    }
}
