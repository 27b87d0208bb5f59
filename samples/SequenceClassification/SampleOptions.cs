using System.Globalization;
using SharpTune;

namespace Samples.SequenceClassification;

/// <summary>Command-line options of the sample.</summary>
/// <param name="DataDirectory">Folder with train.csv and dev.csv (text,label).</param>
/// <param name="Quick">Tiny subset (32 train, 32 dev) for CI.</param>
/// <param name="Epochs">Passes over the training data (default 3; quick 1).</param>
/// <param name="MaxLength">Tokens per text (default 128; quick 64).</param>
/// <param name="Model">A Hugging Face model directory (e.g. a RoBERTa); null: the packaged all-MiniLM-L6-v2.</param>
public sealed record SampleOptions(string DataDirectory, bool Quick = false, int Epochs = 3, int MaxLength = 128, string? Model = null)
{
    /// <summary>Reads --quick, --epochs N, --max-length N, --data DIR, --model DIR.</summary>
    public static SampleOptions Parse(string[] args)
    {
        bool quick = args.Contains("--quick");
        int? epochs = null, maxLength = null;
        string? data = null, model = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick": break;
                case "--epochs": epochs = Number(args, ++i); break;
                case "--max-length": maxLength = Number(args, ++i); break;
                case "--data": data = Value(args, ++i); break;
                case "--model": model = Value(args, ++i); break;
                default: throw new SharpTuneException($"Unknown option '{args[i]}'; known: --quick, --epochs N, --max-length N, --data DIR, --model DIR.");
            }
        }
        return new SampleOptions(data ?? FindSpamSample(), quick, epochs ?? (quick ? 1 : 3), maxLength ?? (quick ? 64 : 128), model);
    }

    /// <summary>data/spam-sample of the repository, found by walking up from the program's folder.</summary>
    public static string FindSpamSample()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "data", "spam-sample");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new SharpTuneException($"data/spam-sample not found in any folder above {AppContext.BaseDirectory}; pass --data DIR.");
    }

    private static string Value(string[] args, int i) =>
        i < args.Length ? args[i] : throw new SharpTuneException($"{args[i - 1]} needs a value.");

    private static int Number(string[] args, int i) =>
        int.TryParse(Value(args, i), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0
            ? n : throw new SharpTuneException($"{args[i - 1]} must be a positive whole number, got '{args[i]}'.");
}
