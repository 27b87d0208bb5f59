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
    [InlineData("lora:r=2,alpha=8")]
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

        // A LoRA checkpoint keeps the adapters unmerged: the model files hold merged weights, the trainer state the layers.
        if (strategy is LoraStrategy)
        {
            using var state = TrainingCheckpoint.Read(TrainingCheckpoint.DirectoryOf(run, 6));
            Assert.Equal(2 * 2 * 4, state.Adapters!.Count); // 2 layers × query, value × base weight, base bias, lora_A, lora_B
            Assert.True(File.Exists(Path.Combine(TrainingCheckpoint.DirectoryOf(run, 6), "adapter", "adapter_config.json")));
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

    // Toy tagged sentences over the tiny vocabulary: a word is B-X when its number is a multiple of 3. Up to 19 words in
    // windows of 16 tokens: long sentences are split, so the windows (the examples) outnumber the sentences.
    private static List<TaggedSentence> ToySentences(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            var words = Enumerable.Range(0, random.Next(3, 20)).Select(_ => random.Next(3, 90)).ToList();
            return new TaggedSentence(words.Select(TinyModels.Word).ToList(), words.Select(w => w % 3 == 0 ? "B-X" : "O").ToList(), i + 1);
        }).ToList();
    }

    [Fact]
    public void Resuming_a_token_classification_checkpoint_ends_with_the_weights_of_the_uninterrupted_run()
    {
        var trainSentences = ToySentences(64, seed: 3);
        var evalSentences = ToySentences(12, seed: 4);
        var tags = TokenDataset.TagSet(trainSentences);
        string run = Path.Combine(folder, "run-token");

        using var whole = TokenTagger.Create(modelDirectory, "token", tags, maxLength: 16);
        int windows = whole.Encode(trainSentences).Count;
        Assert.True(windows > trainSentences.Count, $"{windows} windows");
        var wholeResult = whole.Train(trainSentences, evalSentences, new FullStrategy(), Options(run, saveSteps: 3));
        // The saved token model (HF's XForTokenClassification) has no pooler; the head never read it, so it never trained.
        var expected = Weights(whole).Where(w => !w.Key.StartsWith("bert.pooler.", StringComparison.Ordinal)).ToDictionary();

        int stepsPerEpoch = (windows + 15) / 16;
        int from = TrainingCheckpoint.List(run).Select(c => c.Step).First(s => s > stepsPerEpoch && s % stepsPerEpoch != 0); // mid-epoch 2
        string checkpoint = TrainingCheckpoint.DirectoryOf(run, from);
        using var resumed = TokenTagger.Load(checkpoint);
        var resumedResult = resumed.Train(trainSentences, evalSentences, new FullStrategy(), Options(null) with { ResumeFrom = checkpoint });
        double difference = MaxDifference(expected, Weights(resumed));
        Assert.True(difference <= 1e-6, $"max |diff| {difference} (from step {from})");
        Assert.Equal(wholeResult.Evaluations.Select(e => e.Metrics[MetricNames.TokenAccuracy]), resumedResult.Evaluations.Select(e => e.Metrics[MetricNames.TokenAccuracy]));
    }

    [Fact]
    public void A_step_budget_must_match_to_resume_and_a_matching_one_ends_as_the_uninterrupted_run()
    {
        string run = Path.Combine(folder, "steps");
        var labels = LabelSet.FromTraining(train);
        TrainingOptions Budgeted(string? checkpoints, int steps) => Options(checkpoints, checkpoints is null ? null : 3) with { MaxSteps = steps };
        using var whole = TextClassifier.Create(modelDirectory, "cls", labels, maxLength: 64);
        Assert.Equal("step budget", whole.Train(train, null, new FullStrategy(), Budgeted(run, 7)).Stopped);
        var expected = Weights(whole);

        string checkpoint = TrainingCheckpoint.DirectoryOf(run, 3);
        using var resumed = TextClassifier.Load(checkpoint);
        var error = Assert.Throws<SharpTuneException>(() => resumed.Train(train, null, new FullStrategy(), Budgeted(null, 8) with { ResumeFrom = checkpoint }));
        Assert.Equal($"{Path.Combine(checkpoint, TrainingCheckpoint.StateFile)}: the checkpoint was trained with --steps 7, this run has 8; resume with the same --steps.",
            error.Message);
        error = Assert.Throws<SharpTuneException>(() => resumed.Train(train, null, new FullStrategy(), Options(null) with { ResumeFrom = checkpoint }));
        Assert.Contains("trained with --steps 7, this run has none", error.Message);

        var result = resumed.Train(train, null, new FullStrategy(), Budgeted(null, 7) with { ResumeFrom = checkpoint });
        Assert.Equal("step budget", result.Stopped);
        double difference = MaxDifference(expected, Weights(resumed));
        Assert.True(difference <= 1e-6, $"max |diff| {difference}");
    }

    [Fact]
    public void A_time_budget_continues_from_the_training_time_the_checkpoint_recorded()
    {
        string run = Path.Combine(folder, "seconds");
        var labels = LabelSet.FromTraining(train);
        TrainingOptions Timed(string? checkpoints, double seconds) =>
            Options(checkpoints, checkpoints is null ? null : 2) with { MaxSeconds = seconds, Schedule = LearningRateSchedule.Constant };
        using (var first = TextClassifier.Create(modelDirectory, "cls", labels, maxLength: 64))
            Assert.Null(first.Train(train, null, new FullStrategy(), Timed(run, 3600)).Stopped); // 12 steps, far within the hour
        string checkpoint = TrainingCheckpoint.DirectoryOf(run, 6);
        using (var state = TrainingCheckpoint.Read(checkpoint)) Assert.InRange(state.TrainSeconds, 1e-3, 3600);

        // The checkpoint now says the run had trained the whole hour: the resumed run stops after its first step (the budget
        // is checked after each). Without the recorded time it would train its 6 remaining steps and end unbudgeted.
        string statePath = Path.Combine(checkpoint, TrainingCheckpoint.StateFile);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(statePath))!.AsObject();
        json["train_seconds"] = 3600.0;
        File.WriteAllText(statePath, json.ToJsonString());
        using var resumed = TextClassifier.Load(checkpoint);
        var result = resumed.Train(train, null, new FullStrategy(), Timed(null, 3600) with { ResumeFrom = checkpoint });
        Assert.Equal("time budget", result.Stopped);
        Assert.True(result.TrainSeconds >= 3600, $"{result.TrainSeconds} s");

        var error = Assert.Throws<SharpTuneException>(() => resumed.Train(train, null, new FullStrategy(), Timed(null, 60) with { ResumeFrom = checkpoint }));
        Assert.Contains("trained with --seconds 3600, this run has 60; resume with the same --seconds.", error.Message);
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
    public void Resuming_a_LoRA_run_with_another_dropout_is_an_error_naming_the_strategy_flag()
    {
        string run = Path.Combine(folder, "lora-fixed");
        var labels = LabelSet.FromTraining(train);
        using (var model = TextClassifier.Create(modelDirectory, "cls", labels, maxLength: 64))
            model.Train(train, null, Strategy.Parse("lora:r=2,alpha=8,dropout=0.1"), Options(run) with { Epochs = 1 });
        string checkpoint = TrainingCheckpoint.Newest(run);
        using var resumed = TextClassifier.Load(checkpoint);
        var error = Assert.Throws<SharpTuneException>(() => resumed.Train(train, null, Strategy.Parse("lora:r=2,alpha=8,dropout=0.3"),
            Options(null) with { Epochs = 1, ResumeFrom = checkpoint }));
        Assert.Equal($"{Path.Combine(checkpoint, TrainingCheckpoint.StateFile)}: the checkpoint was trained with --strategy lora:r=2,alpha=8,dropout=0.1,targets=query+value, " +
            "this run has lora:r=2,alpha=8,dropout=0.3,targets=query+value; resume with the same --strategy.", error.Message);
        // The same adapters spelled with the architecture's default targets written out are the same strategy.
        resumed.Train(train, null, Strategy.Parse("lora:r=2,alpha=8,dropout=0.1,targets=query+value"), Options(null) with { Epochs = 1, ResumeFrom = checkpoint });
    }

    [Fact]
    public void A_run_without_checkpoints_cannot_be_resumed()
    {
        var error = Assert.Throws<SharpTuneException>(() => TrainingCheckpoint.Newest(folder));
        Assert.Contains("--resume found no checkpoint-STEP directory", error.Message);
    }
}
