using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Strategies;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>Seeds and budgets of <see cref="StrategyComparison"/> produce the runs they promise.</summary>
public sealed class ComparisonBudgetTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("sharptune-budget-").FullName;
    private readonly List<TextExample> train = TinyModels.ToyTexts(24, seed: 1);
    private readonly List<TextExample> eval = TinyModels.ToyTexts(12, seed: 2);

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private ComparisonOptions Options(params Strategy[] strategies) => new()
    {
        Strategies = strategies, ModelDirectory = TinyModels.Directory(Path.Combine(folder, "model")), MaxLength = 32,
        Training = new TrainingOptions { Epochs = 1, BatchSize = 8, DiskFeatureCache = false },
    };

    private ComparisonResult Run(ComparisonOptions options, string name) =>
        new StrategyComparison(Path.Combine(folder, name), options).Run(train, eval, LabelSet.FromTraining(train));

    [Fact]
    public void Two_seeds_and_a_step_budget_give_one_run_per_strategy_and_seed_each_of_those_steps()
    {
        var options = Options(new FrozenStrategy(), new BitFitStrategy()) with { Seeds = 2, Budget = BudgetKind.Steps, Steps = 5 };

        var result = Run(options, "steps");

        // Seed by seed, each seed through every strategy; 24 examples in batches of 8 make 3 steps an epoch.
        Assert.Equal([("frozen", 42), ("bitfit", 42), ("frozen", 43), ("bitfit", 43)], result.Rows.Select(r => (r.Strategy, r.Seed)));
        Assert.All(result.Rows, r => Assert.Equal(5, r.Steps));
        Assert.All(result.Rows, r => Assert.Equal(5 * 8.0 / 24, r.EpochsTrained, 9)); // the last step of epoch 2 is a full batch of 8
        foreach (var row in result.Rows)
        {
            Assert.Equal(Path.Combine(folder, "steps", row.Strategy, "seed-" + row.Seed), row.RunDirectory);
            Assert.True(File.Exists(Path.Combine(row.RunDirectory, "model.safetensors")), row.RunDirectory);
            // One evaluation, at the end of the budget.
            Assert.Single(File.ReadLines(Path.Combine(row.RunDirectory, RunRecorder.MetricsFile)), l => l.Contains("\"type\":\"eval\""));
        }
        Assert.Equal(["frozen", "bitfit"], result.Summary.Strategies.Select(s => s.Strategy));
        Assert.All(result.Summary.Strategies, s => Assert.Equal(2, s.Runs.Count));
        var json = JsonNode.Parse(File.ReadAllText(result.JsonPath))!;
        Assert.Equal(4, json["rows"]!.AsArray().Count);
        Assert.Equal(2, json["summary"]!.AsArray().Count);
        Assert.Equal(2, json["summary"]![0]!["runs"]!.GetValue<int>());
    }

    [Fact]
    public void Per_strategy_epochs_train_each_strategy_its_own_epochs()
    {
        var options = Options(new FrozenStrategy(), Strategy.Parse("top:1")) with
        {
            StrategyEpochs = new Dictionary<string, int> { ["frozen"] = 4, ["top"] = 2 },
        };

        var result = Run(options, "epochs");

        Assert.Equal([4.0, 2.0], result.Rows.Select(r => r.EpochsTrained));
        Assert.Equal([4 * 3, 2 * 3], result.Rows.Select(r => r.Steps));
        // An epoch budget evaluates every epoch and keeps the best.
        Assert.Equal(4, File.ReadLines(Path.Combine(result.Rows[0].RunDirectory, RunRecorder.MetricsFile)).Count(l => l.Contains("\"type\":\"eval\"")));
    }

    [Fact]
    public void A_time_budget_gives_every_run_the_same_time_and_the_frozen_head_more_epochs()
    {
        var options = Options(new FrozenStrategy(), new FullStrategy()) with { Budget = BudgetKind.Time, Seconds = 1.5 };

        var result = Run(options, "time");

        Assert.Equal(2, result.Rows.Count);
        Assert.All(result.Rows, r => Assert.InRange(r.TrainSeconds, 1.5, 30));
        var (frozen, full) = (result.Rows[0], result.Rows[1]);
        Assert.True(frozen.EpochsTrained > full.EpochsTrained, $"frozen {frozen.EpochsTrained} epochs, full {full.EpochsTrained}");
        Assert.True(frozen.SecondsPerEpoch < full.SecondsPerEpoch);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(full.RunDirectory, RunRecorder.SummaryFile)))!;
        Assert.Equal("time budget", summary["stopped"]!.GetValue<string>());
    }

    [Fact]
    public void Training_options_follow_the_budget()
    {
        var options = Options(new FrozenStrategy(), Strategy.Parse("lora:r=4,alpha=8")) with { LearningRate = null };

        TrainingOptions time = (options with { Budget = BudgetKind.Time, Seconds = 30 }).TrainingFor(new FrozenStrategy(), 7);
        Assert.Equal((30.0, LearningRateSchedule.Constant, 7, 1e-2, "macro_f1"), (time.MaxSeconds!.Value, time.Schedule, time.Seed, time.LearningRates.BaseRate, time.MetricForBest));
        Assert.Null(time.MaxSteps);

        TrainingOptions steps = (options with { Budget = BudgetKind.Steps, Steps = 40 }).TrainingFor(new FrozenStrategy(), 42);
        Assert.Equal((40, LearningRateSchedule.Linear), (steps.MaxSteps!.Value, steps.Schedule));

        var perStrategy = options with { StrategyEpochs = new Dictionary<string, int> { ["lora"] = 5 } };
        Assert.Equal(5, perStrategy.TrainingFor(Strategy.Parse("lora:r=4,alpha=8"), 42).Epochs);
        Assert.Equal(1, perStrategy.TrainingFor(new FrozenStrategy(), 42).Epochs);
        Assert.Equal([42, 43, 44], (options with { Seeds = 3 }).SeedValues);
    }

    [Theory]
    [InlineData("time", null, null, null, 1, "--budget time needs --seconds S")]
    [InlineData("steps", null, null, null, 1, "--budget steps needs --steps N")]
    [InlineData("epochs", 10.0, null, null, 1, "--seconds applies to --budget time only")]
    [InlineData("time", 10.0, null, "frozen", 1, "--strategy-epochs applies to --budget epochs only")]
    [InlineData("epochs", null, null, "fozen", 1, "--strategy-epochs: 'fozen' is none of the strategies (frozen, full)")]
    [InlineData("epochs", null, null, null, 0, "--seeds must be positive, got 0")]
    [InlineData("time", -1.0, null, null, 1, "--seconds must be positive")]
    public void Bad_budgets_and_seeds_name_the_option(string budget, double? seconds, int? steps, string? epochsFor, int seeds, string message)
    {
        var options = Options(new FrozenStrategy(), new FullStrategy()) with
        {
            Budget = Enum.Parse<BudgetKind>(budget, ignoreCase: true), Seconds = seconds, Steps = steps, Seeds = seeds,
            StrategyEpochs = epochsFor is null ? new Dictionary<string, int>() : new Dictionary<string, int> { [epochsFor] = 3 },
        };

        var error = Assert.Throws<SharpTuneException>(() => options.Validate());
        Assert.Contains(message, error.Message);
    }
}
