using SharpTune.Data;

namespace SharpTune.Tests.Data;

public class SpamSampleTests
{
    /// <summary>data/spam-sample at the repository root, found by walking up from the test output folder.</summary>
    internal static string SampleFolder
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "data", "spam-sample");
                if (Directory.Exists(candidate)) return candidate;
            }
            throw new DirectoryNotFoundException($"data/spam-sample not found above {AppContext.BaseDirectory}");
        }
    }

    [Theory]
    [InlineData("train.csv", 200, 100)]
    [InlineData("dev.csv", 67, 33)]
    [InlineData("test.csv", 67, 33)]
    public void Spam_sample_split_has_the_documented_counts(string file, int ham, int spam)
    {
        LoadedData data = TextDataset.Load(Path.Combine(SampleFolder, file));
        Assert.Equal(0, data.SkippedRows);
        Assert.Equal(ham, data.Examples.Count(e => e.Label == "ham"));
        Assert.Equal(spam, data.Examples.Count(e => e.Label == "spam"));
        Assert.All(data.Examples, e => Assert.Contains("\n\n", e.Text));
    }

    [Fact]
    public void Spam_sample_has_two_labels_and_eval_splits_use_only_them()
    {
        LabelSet labels = LabelSet.FromTraining(TextDataset.Load(Path.Combine(SampleFolder, "train.csv")).Examples);
        Assert.Equal(["ham", "spam"], labels.Names);
        foreach (string split in new[] { "dev.csv", "test.csv" })
            Assert.Equal(100, labels.Check(TextDataset.Load(Path.Combine(SampleFolder, split))).Examples.Count);
    }
}
