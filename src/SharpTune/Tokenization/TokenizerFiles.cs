using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenization;

/// <summary>Chooses and loads the tokenizer of a model directory from its files (see <see cref="Tokenizer.FromDirectory"/>).</summary>
internal static class TokenizerFiles
{
    public static Tokenizer Load(string directory)
    {
        if (!Directory.Exists(directory)) throw new SharpTuneException($"{directory}: the tokenizer directory does not exist.");
        string Path(string name) => System.IO.Path.Combine(directory, name);
        string json = Path("tokenizer.json");
        if (File.Exists(json))
        {
            string? type = ReadObject(json)["model"]?["type"]?.GetValue<string>();
            switch (type)
            {
                case "WordPiece": return BertTokenizer.FromDirectory(directory);
                default:
                    throw new SharpTuneException($"{json}: model.type '{type ?? "missing"}' is not supported; supported: WordPiece, BPE, Unigram.");
            }
        }
        if (File.Exists(Path("vocab.txt"))) return BertTokenizer.FromDirectory(directory);
        throw new SharpTuneException($"{directory}: no tokenizer files; expected tokenizer.json, vocab.txt (WordPiece), vocab.json + merges.txt (byte-level BPE), " +
            "sentencepiece.bpe.model or spm.model (SentencePiece).");
    }

    public static JsonObject ReadObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new SharpTuneException($"{path}: expected a JSON object.");
        }
        catch (JsonException error)
        {
            throw new SharpTuneException($"{path}: invalid JSON at line {error.LineNumber + 1}: {error.Message}", error);
        }
    }
}
