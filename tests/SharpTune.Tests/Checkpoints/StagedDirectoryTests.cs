using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;

namespace SharpTune.Tests.Checkpoints;

/// <summary>A directory is written as a whole: a save that fails at any point leaves the previous one intact and loadable.</summary>
public sealed class StagedDirectoryTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("sharptune-staged-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private TextClassifier Trained(int seed)
    {
        string model = TinyModels.Directory(Path.Combine(root, "base"));
        var train = TinyModels.ToyTexts(16, seed: seed);
        var classifier = TextClassifier.Create(model, "mean", LabelSet.FromTraining(train), maxLength: 16, seed: seed);
        classifier.Train(train, null, Strategy.Parse("frozen"), new TrainingOptions { Epochs = 1, BatchSize = 8, LearningRates = new(1e-2), DiskFeatureCache = false });
        return classifier;
    }

    // Every file of the directory with its bytes, by relative path.
    private static Dictionary<string, byte[]> Snapshot(string directory) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(directory, f), File.ReadAllBytes);

    private static void AssertSame(Dictionary<string, byte[]> expected, string directory)
    {
        var actual = Snapshot(directory);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (file, bytes) in expected) Assert.True(bytes.AsSpan().SequenceEqual(actual[file]), $"{file} changed");
    }

    private string[] Siblings() => Directory.GetFileSystemEntries(root).Select(Path.GetFileName).Order().ToArray()!;

    private float[] Probabilities(TextClassifier classifier) =>
        classifier.Predict(["w1 w2 w3", "w4"]).SelectMany(p => p.Probabilities.Values).ToArray();

    [Fact]
    public void A_save_that_throws_after_writing_the_weights_leaves_the_previous_run_intact_and_loadable()
    {
        string run = Path.Combine(root, "run");
        using var first = Trained(seed: 1);
        first.Save(run);
        var before = Snapshot(run);
        float[] expected = Probabilities(first);

        using var second = Trained(seed: 2);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!.AsObject();
        var tensors = StateDict.ToDictionary(second.Model);
        var error = Assert.Throws<IOException>(() => HfModelDirectory.Save(run, config, tensors, writeMore: staging =>
        {
            Assert.True(File.Exists(Path.Combine(staging, "model.safetensors"))); // midway: config and weights are written
            throw new IOException("disk gone");
        }));
        foreach (var t in tensors.Values) t.Dispose();

        Assert.Equal("disk gone", error.Message);
        AssertSame(before, run);
        Assert.Equal(["base", "run"], Siblings()); // no temporary directory left
        using var loaded = TextClassifier.Load(run);
        Assert.Equal(expected, Probabilities(loaded));
    }

    [Fact]
    public void A_tensor_that_cannot_be_written_midway_leaves_the_previous_run_intact()
    {
        string run = Path.Combine(root, "run");
        using var first = Trained(seed: 1);
        first.Save(run);
        var before = Snapshot(run);

        using var second = Trained(seed: 2);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!.AsObject();
        var tensors = StateDict.ToDictionary(second.Model);
        // A complex tensor: safetensors as written here has no dtype for it, so the weights file fails after config.json.
        tensors["zzz.unwritable"] = torch.zeros(2, dtype: torch.complex64);
        Assert.Throws<SharpTuneException>(() => HfModelDirectory.Save(run, config, tensors));
        foreach (var t in tensors.Values) t.Dispose();

        AssertSame(before, run);
        Assert.Equal(["base", "run"], Siblings());
        using var loaded = TextClassifier.Load(run);
    }

    [Fact]
    public void A_successful_save_replaces_the_whole_previous_directory()
    {
        string run = Path.Combine(root, "run");
        using var first = Trained(seed: 1);
        first.Save(run);
        File.WriteAllText(Path.Combine(run, "stale.txt"), "from before");
        using var second = Trained(seed: 2);
        second.Save(run);

        Assert.False(File.Exists(Path.Combine(run, "stale.txt"))); // nothing of the old directory mixes with the new
        Assert.Equal(["base", "run"], Siblings());
        using var loaded = TextClassifier.Load(run);
        Assert.Equal(Probabilities(second), Probabilities(loaded));
        Assert.NotEqual(Probabilities(first), Probabilities(loaded));
    }

    [Fact]
    public void Without_overwrite_an_existing_directory_is_refused_by_name_and_kept()
    {
        string target = Path.Combine(root, "kept");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "a.txt"), "a");
        var error = Assert.Throws<SharpTuneException>(() => StagedDirectory.Write(target, d => File.WriteAllText(Path.Combine(d, "b.txt"), "b"), overwrite: false));
        Assert.Contains(target, error.Message);
        Assert.Equal(["a.txt"], Directory.GetFiles(target).Select(Path.GetFileName));
        Assert.Equal(["kept"], Siblings());
    }

    [Fact]
    public void A_directory_created_by_another_writer_meanwhile_is_kept_without_overwrite()
    {
        string target = Path.Combine(root, "raced");
        using var staged = StagedDirectory.Begin(target, overwrite: false);
        File.WriteAllText(Path.Combine(staged.Path, "mine.txt"), "mine");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "theirs.txt"), "theirs");
        Assert.Throws<SharpTuneException>(staged.Commit);
        Assert.Equal(["theirs.txt"], Directory.GetFiles(target).Select(Path.GetFileName));
    }

    [Fact]
    public void The_temporary_directory_of_a_killed_writer_is_removed_by_the_next_write()
    {
        string target = Path.Combine(root, "target");
        // What a writer killed mid-save leaves: a sibling named for a process that no longer exists.
        int deadPid = 999_999_999;
        Assert.False(Directory.Exists($"/proc/{deadPid}"));
        string abandoned = Path.Combine(root, $".target.tmp-{deadPid}-0123456789abcdef");
        Directory.CreateDirectory(abandoned);
        File.WriteAllText(Path.Combine(abandoned, "config.json"), "{");
        // One of a live process (this one) is another writer's work in progress: kept.
        string live = Path.Combine(root, $".target.tmp-{Environment.ProcessId}-fedcba9876543210");
        Directory.CreateDirectory(live);

        StagedDirectory.Write(target, d => File.WriteAllText(Path.Combine(d, "x.txt"), "x"));

        Assert.False(Directory.Exists(abandoned));
        Assert.True(Directory.Exists(live));
        Assert.Equal("x", File.ReadAllText(Path.Combine(target, "x.txt")));
    }
}
