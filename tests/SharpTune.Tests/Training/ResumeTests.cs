using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

public sealed class ResumeTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("sharptune-resume-").FullName;
    private readonly string modelDirectory;
    private readonly List<TextExample> train = TinyModels.ToyTexts(64, seed: 1);
    private readonly List<TextExample> eval = TinyModels.ToyTexts(16, seed: 2);

    public ResumeTests() => modelDirectory = TinyModels.Directory(Path.Combine(folder, "tiny"));

    public void Dispose() => Directory.Delete(folder, recursive: true);

    // 64 examples in batches of 16: 4 steps an epoch, 3 epochs; dropout 0.1 in the tiny model.
    private TrainingOptions Options(string? checkpoints, int? saveSteps = null) => new()
    {
        Epochs = 3, BatchSize = 16, LearningRates = new(1e-3), CheckpointDirectory = checkpoints, SaveEverySteps = saveSteps,
    };

    private static Dictionary<string, Tensor> Weights(TaskModel model) =>
        model.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    private static double MaxDifference(Dictionary<string, Tensor> a, Dictionary<string, Tensor> b)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        return a.Keys.Max(k => (a[k] - b[k]).abs().max().item<float>());
    }

    [Theory]
    [InlineData("full")]
    [InlineData("gradual")]
    public void Resuming_a_mid_epoch_checkpoint_ends_with_the_weights_of_the_uninterrupted_run(string strategyName)
    {
        var strategy = Strategy.Parse(strategyName);
        var labels = LabelSet.FromTraining(train);
        string run = Path.Combine(folder, "run-" + strategyName);

        // Uninterrupted, writing checkpoints after steps 3, 4 (epoch end), 6, 8 (epoch end), 9, 12 (end).
        using var whole = TextClassifier.Create(modelDirectory, "cls", labels, maxLength: 64);
        var wholeResult = whole.Train(train, eval, strategy, Options(run, saveSteps: 3));
        var expected = Weights(whole);
        Assert.Equal([3, 4, 6, 8, 9, 12], TrainingCheckpoint.List(run).Select(c => c.Step));

        // Writing checkpoints changes nothing: a run without them ends the same.
        using (var plain = TextClassifier.Create(modelDirectory, "cls", labels, maxLength: 64))
        {
            plain.Train(train, eval, strategy, Options(null));
            Assert.Equal(0, MaxDifference(expected, Weights(plain)));
        }

        // From checkpoint-6 (epoch 2, batch 3 of 4 next; gradual has opened layer 1 by then).
        string checkpoint = TrainingCheckpoint.DirectoryOf(run, 6);
        using var resumed = TextClassifier.Load(checkpoint);
        var resumedResult = resumed.Train(train, eval, strategy, Options(Path.Combine(folder, "again-" + strategyName), 3) with { ResumeFrom = checkpoint });
        double difference = MaxDifference(expected, Weights(resumed));
        Assert.True(difference <= 1e-6, $"max |diff| {difference}");
        Assert.Equal(wholeResult.Evaluations.Select(e => e.Step), resumedResult.Evaluations.Select(e => e.Step));
        Assert.All(wholeResult.Evaluations.Zip(resumedResult.Evaluations), p => Assert.Equal(p.First.Metrics["loss"], p.Second.Metrics["loss"], 1e-6));
        Assert.Equal(wholeResult.BestEvaluation!.Step, resumedResult.BestEvaluation!.Step);
    }

    [Fact]
    public void Save_total_limit_keeps_the_newest_checkpoints()
    {
        string run = Path.Combine(folder, "limited");
        using var model = TextClassifier.Create(modelDirectory, "cls", LabelSet.FromTraining(train), maxLength: 64);
        model.Train(train, null, new FullStrategy(), Options(run, saveSteps: 1) with { SaveTotalLimit = 2 });
        Assert.Equal([11, 12], TrainingCheckpoint.List(run).Select(c => c.Step));
        Assert.Equal(["checkpoint-11", "checkpoint-12"], Directory.GetFileSystemEntries(run).Select(Path.GetFileName).Order());
        // Each is a whole run directory: it loads as a model.
        using var loaded = TextClassifier.Load(TrainingCheckpoint.DirectoryOf(run, 12));
        Assert.Equal(0, MaxDifference(Weights(model), Weights(loaded)));
    }

    [Fact]
    public void Resuming_with_another_batch_size_is_an_error_naming_the_flag_and_file()
    {
        string run = Path.Combine(folder, "fixed");
        var labels = LabelSet.FromTraining(train);
        using (var model = TextClassifier.Create(modelDirectory, "cls", labels, maxLength: 64))
            model.Train(train, null, new FullStrategy(), Options(run) with { Epochs = 1 });
        string checkpoint = TrainingCheckpoint.Newest(run);
        using var resumed = TextClassifier.Load(checkpoint);
        var error = Assert.Throws<SharpTuneException>(() =>
            resumed.Train(train, null, new FullStrategy(), Options(null) with { Epochs = 1, BatchSize = 8, ResumeFrom = checkpoint }));
        Assert.Equal($"{Path.Combine(checkpoint, TrainingCheckpoint.StateFile)}: the checkpoint was trained with --batch-size 16, this run has 8; resume with the same --batch-size.",
            error.Message);
    }

    [Fact]
    public void A_run_without_checkpoints_cannot_be_resumed()
    {
        var error = Assert.Throws<SharpTuneException>(() => TrainingCheckpoint.Newest(folder));
        Assert.Contains("--resume found no checkpoint-STEP directory", error.Message);
    }
}
