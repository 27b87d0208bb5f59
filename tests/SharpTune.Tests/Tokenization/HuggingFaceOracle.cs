using System.Text;
using System.Text.Json.Nodes;

namespace SharpTune.Tests.Tokenization;

/// <summary>
/// Hugging Face's own Rust tokenizer (through Tokenizers.DotNet) over a bert-base-uncased style tokenizer.json
/// built from the MiniLM vocab: the reference BertTokenizer must match id for id. Test-only.
/// </summary>
internal static class HuggingFaceOracle
{
    private static readonly Lazy<Tokenizers.DotNet.Tokenizer> LazyTokenizer = new(() =>
    {
        string path = Path.Combine(MiniLMVocab.Directory, "tokenizer.json");
        File.WriteAllText(path, TokenizerJson(File.ReadAllLines(MiniLMVocab.VocabPath)));
        return new Tokenizers.DotNet.Tokenizer(path);
    });

    private static readonly object Gate = new();

    /// <summary>Ids with [CLS] … [SEP], as HF's encode(text) returns them.</summary>
    public static long[] Encode(string text)
    {
        lock (Gate) return LazyTokenizer.Value.Encode(text).Select(id => (long)id).ToArray();
    }

    private static string TokenizerJson(string[] vocabLines)
    {
        var vocab = new JsonObject();
        for (int id = 0; id < vocabLines.Length; id++) vocab[vocabLines[id]] = id;
        JsonObject Added(string content, int id) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        };
        JsonObject Piece(string kind, string id, int typeId) => new() { [kind] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(Added("[PAD]", 0), Added("[UNK]", 100), Added("[CLS]", 101), Added("[SEP]", 102), Added("[MASK]", 103)),
            ["normalizer"] = new JsonObject
            {
                ["type"] = "BertNormalizer", ["clean_text"] = true, ["handle_chinese_chars"] = true, ["strip_accents"] = null, ["lowercase"] = true,
            },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Piece("SpecialToken", "[CLS]", 0), Piece("Sequence", "A", 0), Piece("SpecialToken", "[SEP]", 0)),
                ["pair"] = new JsonArray(Piece("SpecialToken", "[CLS]", 0), Piece("Sequence", "A", 0), Piece("SpecialToken", "[SEP]", 0),
                    Piece("Sequence", "B", 1), Piece("SpecialToken", "[SEP]", 1)),
                ["special_tokens"] = new JsonObject
                {
                    ["[CLS]"] = new JsonObject { ["id"] = "[CLS]", ["ids"] = new JsonArray(101), ["tokens"] = new JsonArray("[CLS]") },
                    ["[SEP]"] = new JsonObject { ["id"] = "[SEP]", ["ids"] = new JsonArray(102), ["tokens"] = new JsonArray("[SEP]") },
                },
            },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["continuing_subword_prefix"] = "##", ["max_input_chars_per_word"] = 100,
                ["vocab"] = vocab,
            },
        };
        return json.ToJsonString();
    }
}

/// <summary>The text column of a CSV file (RFC 4180: quoted fields may hold commas, newlines and doubled quotes).</summary>
internal static class Csv
{
    public static List<string[]> ReadRecords(string path)
    {
        string text = File.ReadAllText(path, Encoding.UTF8);
        var records = new List<string[]>();
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(field.ToString()); field.Clear(); }
            else if (c == '\n' || c == '\r')
            {
                if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
                fields.Add(field.ToString()); field.Clear();
                records.Add(fields.ToArray()); fields.Clear();
            }
            else field.Append(c);
        }
        if (field.Length > 0 || fields.Count > 0) { fields.Add(field.ToString()); records.Add(fields.ToArray()); }
        return records;
    }

    /// <summary>../shared/data/spamassassin/train.csv beside the repository root (as CI lays it out); null if absent.</summary>
    public static string? SpamAssassinTrain()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "Directory.Build.props"))) continue;
            string path = Path.Combine(dir.FullName, "..", "shared", "data", "spamassassin", "train.csv");
            return File.Exists(path) ? Path.GetFullPath(path) : null;
        }
        return null;
    }
}

/// <summary>
/// A fact that needs the full SpamAssassin training file of ../shared: reported as skipped, with the reason, when the
/// file is not beside the repository (a clone without shared/), instead of passing without testing anything.
/// </summary>
public sealed class SpamAssassinFactAttribute : FactAttribute
{
    public SpamAssassinFactAttribute()
    {
        if (Csv.SpamAssassinTrain() is null) Skip = "../shared/data/spamassassin/train.csv is not beside the repository.";
    }
}
