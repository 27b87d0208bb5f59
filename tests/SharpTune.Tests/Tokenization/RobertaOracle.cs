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

    /// <summary>The whole tokenizer.json of the fixture; its "model" object is what ByteLevelBpe.FromTokenizerJson reads.</summary>
    public static JsonObject TokenizerJson(bool mergesAsArrays)
    {
        var vocab = JsonNode.Parse(File.ReadAllText(VocabPath))!.AsObject();
        var merges = new JsonArray();
        foreach (string line in File.ReadAllLines(MergesPath).Skip(1).Where(l => l.Length > 0))
        {
            string[] parts = line.Split(' ');
            merges.Add(mergesAsArrays ? new JsonArray(parts[0], parts[1]) : JsonValue.Create(line));
        }
        return TokenizerJson(vocab, merges, SpecialTokens);
    }

    /// <summary>
    /// A synthetic byte-level BPE whose merges join every pair of bytes, in a fixed shuffled order. The fixture's
    /// 3000 merges never join two spaces or a space and a no-break space, so a split in the wrong place would go unseen
    /// there; here almost every split boundary changes which byte pairs merge.
    /// </summary>
    public static JsonObject AllBytePairsTokenizerJson()
    {
        char[] byteChars = BytesToUnicode();
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[byteChars[b].ToString()] = b;
        // Pairs that can join two characters (the right byte starts a character) rank first, so that the bytes of a
        // character merge with a neighbour rather than with each other, and a split at a character boundary shows.
        var random = new Random(1234);
        var pairs = new List<(int, int)>(256 * 256);
        foreach (bool startsCharacter in new[] { true, false })
        {
            var group = new List<(int, int)>();
            for (int a = 0; a < 256; a++) for (int b = 0; b < 256; b++) if ((b is < 0x80 or >= 0xC0) == startsCharacter) group.Add((a, b));
            random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(group));
            pairs.AddRange(group);
        }
        var merges = new JsonArray();
        foreach (var (a, b) in pairs)
        {
            vocab[$"{byteChars[a]}{byteChars[b]}"] = vocab.Count;
            merges.Add(JsonValue.Create($"{byteChars[a]} {byteChars[b]}"));
        }
        return TokenizerJson(vocab, merges, []);
    }

    private static readonly Lazy<Tokenizers.DotNet.Tokenizer> LazyAllBytePairs = new(() =>
    {
        string path = Path.Combine(Path.GetTempPath(), $"sharptune-bytepairs-oracle-{Environment.ProcessId}", "tokenizer.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, AllBytePairsTokenizerJson().ToJsonString());
        return new Tokenizers.DotNet.Tokenizer(path);
    });

    /// <summary>Ids of <paramref name="text"/> under <see cref="AllBytePairsTokenizerJson"/> as HF's Rust tokenizer computes them.</summary>
    public static int[] EncodeAllBytePairs(string text)
    {
        lock (Gate) return LazyAllBytePairs.Value.Encode(text).Select(id => checked((int)id)).ToArray();
    }

    /// <summary>GPT-2's bytes_to_unicode, written out independently of the code under test.</summary>
    private static char[] BytesToUnicode()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToHashSet();
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++) map[b] = printable.Contains(b) ? (char)b : (char)(256 + n++);
        return map;
    }

    private static JsonObject TokenizerJson(JsonObject vocab, JsonArray merges, string[] specialTokens)
    {
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
            ["added_tokens"] = new JsonArray(specialTokens.Select(t => (JsonNode)Added(t)).ToArray()),
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
