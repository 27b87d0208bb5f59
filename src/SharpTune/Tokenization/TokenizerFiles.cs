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
            JsonObject root = StrictJson.ReadObject(json);
            // Indexing or GetValue on a node of another JSON type throws InvalidOperationException, so types are checked.
            string? type = root["model"] is JsonObject model && model["type"] is JsonValue typeValue && typeValue.TryGetValue(out string? name) ? name : null;
            switch (type)
            {
                case "WordPiece": return BertTokenizer.FromDirectory(directory);
                case "BPE":
                    bool prefixSpace = root["pre_tokenizer"] switch
                    {
                        null => false,
                        JsonObject pre => pre["add_prefix_space"] switch
                        {
                            null => false,
                            JsonValue flag when flag.TryGetValue(out bool value) => value,
                            var other => throw new SharpTuneException($"{json}: pre_tokenizer.add_prefix_space must be true or false, got {other.ToJsonString()}."),
                        },
                        var other => throw new SharpTuneException($"{json}: pre_tokenizer must be an object or null, got {other.ToJsonString()}."),
                    };
                    return SubwordTokenizer.Create(new ByteLevelBpeModel(ByteLevelBpe.FromTokenizerJson(root["model"]!.AsObject(), json, prefixSpace)), directory, "RobertaTokenizer", root);
                case "Unigram":
                    return SubwordTokenizer.Create(new SentencePieceModel(SentencePieceUnigram.FromTokenizerJson(root, json)), directory, "XLMRobertaTokenizer", root);
                default:
                    throw new SharpTuneException($"{json}: model.type '{type ?? "missing"}' is not supported; supported: WordPiece, BPE, Unigram.");
            }
        }
        if (File.Exists(Path("vocab.txt"))) return BertTokenizer.FromDirectory(directory);
        if (File.Exists(Path("vocab.json")) && File.Exists(Path("merges.txt")))
            return SubwordTokenizer.Create(new ByteLevelBpeModel(ByteLevelBpe.FromFiles(Path("vocab.json"), Path("merges.txt"))), directory, "RobertaTokenizer");
        if (File.Exists(Path("sentencepiece.bpe.model")))
            return SubwordTokenizer.Create(new SentencePieceModel(SentencePieceUnigram.FromModelFile(Path("sentencepiece.bpe.model"), fairseqIds: true)), directory, "XLMRobertaTokenizer");
        if (File.Exists(Path("spm.model")))
            return SubwordTokenizer.Create(new SentencePieceModel(SentencePieceUnigram.FromModelFile(Path("spm.model"), fairseqIds: false)), directory, "DebertaV2Tokenizer");
        throw new SharpTuneException($"{directory}: no tokenizer files; expected tokenizer.json, vocab.txt (WordPiece), vocab.json + merges.txt (byte-level BPE), " +
            "sentencepiece.bpe.model or spm.model (SentencePiece).");
    }
}
