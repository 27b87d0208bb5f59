using SharpTune.Checkpoints;

namespace SharpTune.Hub;

/// <summary>
/// Which files of a hub revision SharpTune needs: what <see cref="HfModelDirectory.Open"/> and the tokenizer loader read,
/// and nothing else (no other frameworks' weights, no ONNX folders, no duplicates of the same weights).
/// </summary>
internal static class HubFiles
{
    public const string Config = "config.json";

    /// <summary>Weights in the loader's order of preference: safetensors (one file, then sharded), then pytorch_model.bin.</summary>
    public static readonly string[] Weights = [HfModelDirectory.WeightsFileName, SafeTensorsIndex.FileName, PickleCheckpoint.FileName, PickleCheckpoint.IndexFileName];

    // Read beside any tokenizer model for the special tokens.
    private static readonly string[] TokenizerSettings = ["tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"];

    /// <summary>True for a sharded checkpoint's index (its shards are chosen after reading it).</summary>
    public static bool IsIndex(string name) => name.EndsWith(".index.json", StringComparison.Ordinal);

    /// <summary>
    /// The files to fetch among <paramref name="available"/> (a revision's files, or a cached snapshot's): config.json, the
    /// first weights of <see cref="Weights"/>, the tokenizer model the loader would read (tokenizer.json — with vocab.txt,
    /// which wins for WordPiece — else vocab.txt, else vocab.json + merges.txt, else sentencepiece.bpe.model, else
    /// spm.model) and its settings. Null when config.json or the weights are missing; <paramref name="missing"/> says which.
    /// </summary>
    public static List<string>? Select(IReadOnlySet<string> available, out string missing)
    {
        missing = "";
        if (!available.Contains(Config))
        {
            missing = Config;
            return null;
        }
        string? weights = Weights.FirstOrDefault(available.Contains);
        if (weights is null)
        {
            missing = $"PyTorch weights ({string.Join(", ", Weights)})";
            return null;
        }
        var files = new List<string> { Config, weights };
        string[] tokenizer = available.Contains("tokenizer.json") ? ["tokenizer.json", "vocab.txt"]
            : available.Contains("vocab.txt") ? ["vocab.txt"]
            : available.Contains("vocab.json") && available.Contains("merges.txt") ? ["vocab.json", "merges.txt"]
            : available.Contains("sentencepiece.bpe.model") ? ["sentencepiece.bpe.model"]
            : ["spm.model"];
        files.AddRange(tokenizer.Concat(TokenizerSettings).Where(available.Contains));
        return files;
    }
}
