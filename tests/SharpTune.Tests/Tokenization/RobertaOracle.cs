using System.Text.Json.Nodes;
using SharpTune.Tests.Fixtures;

namespace SharpTune.Tests.Tokenization;

/// <summary>
/// Hugging Face's own Rust tokenizer (through Tokenizers.DotNet) over a RoBERTa tokenizer.json built from the fixture's
/// vocab.json and merges.txt: ByteLevel pre-tokenizer (no prefix space, regex), BPE model, no post-processor, so that
/// encode(text) returns exactly the pieces ByteLevelBpe must produce. Test-only.
/// </summary>
internal static class RobertaOracle
{
    public static string VocabPath => Path.Combine(HfFixtures.Directory("roberta"), "vocab.json");
    public static string MergesPath => Path.Combine(HfFixtures.Directory("roberta"), "merges.txt");

    /// <summary>The special tokens of the fixture vocab; HF splits them out of a text before the BPE stage.</summary>
    public static readonly string[] SpecialTokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];

    private static readonly Lazy<string> LazyJsonPath = new(() =>
    {
        string directory = Path.Combine(Path.GetTempPath(), $"sharptune-roberta-oracle-{Environment.ProcessId}");
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, "tokenizer.json");
        File.WriteAllText(path, TokenizerJson(mergesAsArrays: false).ToJsonString());
        return path;
    });

    // A load failure surfaces as an exception in every test that asks the oracle, never as a pass.
    private static readonly Lazy<Tokenizers.DotNet.Tokenizer> LazyTokenizer = new(() => new Tokenizers.DotNet.Tokenizer(LazyJsonPath.Value));

    private static readonly object Gate = new();

    /// <summary>Ids of <paramref name="text"/> as HF's Rust tokenizer computes them (no special tokens).</summary>
    public static int[] Encode(string text)
    {
        lock (Gate) return LazyTokenizer.Value.Encode(text).Select(id => checked((int)id)).ToArray();
    }

    /// <summary>The whole tokenizer.json; its "model" object is what ByteLevelBpe.FromTokenizerJson reads.</summary>
    public static JsonObject TokenizerJson(bool mergesAsArrays)
    {
        var vocab = JsonNode.Parse(File.ReadAllText(VocabPath))!.AsObject();
        var merges = new JsonArray();
        foreach (string line in File.ReadAllLines(MergesPath).Skip(1).Where(l => l.Length > 0))
        {
            string[] parts = line.Split(' ');
            merges.Add(mergesAsArrays ? new JsonArray(parts[0], parts[1]) : JsonValue.Create(line));
        }
        JsonObject Added(string content) => new()
        {
            ["id"] = vocab[content]!.GetValue<int>(), ["content"] = content, ["single_word"] = false, ["lstrip"] = content == "<mask>",
            ["rstrip"] = false, ["normalized"] = content != "<mask>", ["special"] = true,
        };
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(SpecialTokens.Select(t => (JsonNode)Added(t)).ToArray()),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true,
            },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "", ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["vocab"] = vocab, ["merges"] = merges,
            },
        };
    }

    /// <summary>The text column of data/spam-sample/train.csv in the repository.</summary>
    public static List<string> SpamSampleTexts()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, "data", "spam-sample", "train.csv");
            if (!File.Exists(Path.Combine(dir.FullName, "Directory.Build.props")) || !File.Exists(path)) continue;
            List<string[]> records = Csv.ReadRecords(path);
            int column = Array.IndexOf(records[0], "text");
            if (column < 0) throw new InvalidDataException($"{path}: no \"text\" column in the header.");
            return records.Skip(1).Select(r => r[column]).ToList();
        }
        throw new FileNotFoundException($"data/spam-sample/train.csv not found above {AppContext.BaseDirectory}.");
    }
}
