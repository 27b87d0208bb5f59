using SharpTune.Checkpoints;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

/// <summary>The packaged all-MiniLM-L6-v2 vocab.txt (bert-base-uncased's 30522 tokens, CRLF) written once to a temp dir.</summary>
internal static class MiniLMVocab
{
    private static readonly Lazy<string> LazyDirectory = new(() =>
    {
        string directory = Path.Combine(Path.GetTempPath(), $"sharptune-minilm-vocab-{Environment.ProcessId}");
        System.IO.Directory.CreateDirectory(directory);
        PackagedResources.ExtractToFile(PackagedResources.MiniLMAssemblyPath, PackagedResources.MiniLMVocab, Path.Combine(directory, "vocab.txt"));
        return directory;
    });

    private static readonly Lazy<BertTokenizer> LazyTokenizer = new(() => BertTokenizer.FromVocabFile(VocabPath));

    public static string Directory => LazyDirectory.Value;
    public static string VocabPath => Path.Combine(Directory, "vocab.txt");
    public static BertTokenizer Tokenizer => LazyTokenizer.Value;

    public static string NewTempDirectory()
    {
        string directory = Path.Combine(Path.GetTempPath(), "sharptune-tok-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(directory);
        return directory;
    }
}
