using SharpTune.Strategies;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>The trainer's time and step budgets (<see cref="TrainingOptions.MaxSeconds"/>, <see cref="TrainingOptions.MaxSteps"/>).</summary>
public class TrainingBudgetTests
{
    private sealed class Recorder : IProgress<TrainingEvent>
    {
        public List<TrainingEvent> Events { get; } = [];
        public void Report(TrainingEvent value) => Events.Add(value);
    }

    [Fact]
    public void A_step_budget_takes_exactly_that_many_steps_across_epochs_and_evaluates_once_at_its_end()
    {
        using var model = TinyModels.Classifier("cls");
        var recorder = new Recorder();
        // 40 examples in batches of 8: 5 steps an epoch, so 12 steps end in the middle of the third epoch.
        var options = new TrainingOptions { Epochs = 100, MaxSteps = 12, BatchSize = 8, LearningRates = new(1e-3), DiskFeatureCache = false };

        var result = new Trainer(model, new FullStrategy(), options, recorder).Fit(TinyModels.ToyTask(40, seed: 1), TinyModels.ToyTask(16, seed: 2));

        var steps = recorder.Events.OfType<StepEvent>().ToList();
        Assert.Equal(12, steps.Count);
        Assert.Equal(2, steps[^1].Epoch);
        Assert.All(steps, s => Assert.Equal(12, s.TotalSteps));
        Assert.Equal("step budget", result.Stopped);
        var evaluation = Assert.Single(result.Evaluations);
        Assert.Equal(12, evaluation.Step);
        Assert.Equal(12 * 8, result.SamplesPerSecond * result.TrainSeconds, 6);
    }

    [Fact]
    public void A_step_budget_decays_the_rate_to_zero_over_its_steps()
    {
        using var model = TinyModels.Classifier("cls");
        var recorder = new Recorder();
        var options = new TrainingOptions { Epochs = 100, MaxSteps = 10, BatchSize = 8, LearningRates = new(1e-3), WarmupRatio = 0 };

        new Trainer(model, new FullStrategy(), options, recorder).Fit(TinyModels.ToyTask(16, seed: 1));

        double[] rates = recorder.Events.OfType<StepEvent>().Select(s => s.LearningRate).ToArray();
        // Linear decay over the 10 budgeted steps (not over 100 epochs): step k runs at 1e-3 × (1 − k/10).
        Assert.Equal(Enumerable.Range(0, 10).Select(k => 1e-3 * (1 - k / 10.0)), rates, (a, b) => Math.Abs(a - b) < 1e-12);
    }

    [Fact]
    public void A_time_budget_stops_after_the_step_that_spends_it_and_evaluates_there()
    {
        using var model = TinyModels.Classifier("cls");
        var recorder = new Recorder();
        var options = new TrainingOptions
        {
            Epochs = ComparisonOptions.TimeBudgetEpochLimit, MaxSeconds = 1.5, Schedule = LearningRateSchedule.Constant,
            BatchSize = 8, LearningRates = new(1e-3), WarmupRatio = 0.5,
        };

        var result = new Trainer(model, new FullStrategy(), options, recorder).Fit(TinyModels.ToyTask(32, seed: 1), TinyModels.ToyTask(16, seed: 2));

        Assert.Equal("time budget", result.Stopped);
        Assert.InRange(result.TrainSeconds, 1.5, 30);
        var steps = recorder.Events.OfType<StepEvent>().ToList();
        if (steps.Count > 1) Assert.True(steps[^2].Elapsed.TotalSeconds < 1.5, "the step before the last had spent the budget already");
        var evaluation = Assert.Single(result.Evaluations);
        Assert.Equal(steps[^1].Step, evaluation.Step);
        // Warm-up over half of one epoch's 4 steps, then constant: the schedule never depends on the unknown step count.
        Assert.All(steps, s => Assert.Equal(s.Step == 1 ? 0.5e-3 : 1e-3, s.LearningRate, 12));
    }

    [Fact]
    public void A_time_budget_that_outlasts_the_epochs_evaluates_after_the_last_epoch_only()
    {
        using var model = TinyModels.Classifier("cls");
        var options = new TrainingOptions { Epochs = 3, MaxSeconds = 600, Schedule = LearningRateSchedule.Constant, BatchSize = 8, LearningRates = new(1e-3) };

        var result = new Trainer(model, new FullStrategy(), options).Fit(TinyModels.ToyTask(16, seed: 1), TinyModels.ToyTask(8, seed: 2));

        Assert.Null(result.Stopped);
        Assert.Equal(2, Assert.Single(result.Evaluations).Epoch);
    }

    [Theory]
    [InlineData(0.0, null, LearningRateSchedule.Constant, "--seconds must be positive")]
    [InlineData(null, 0, LearningRateSchedule.Linear, "--steps must be positive")]
    [InlineData(10.0, null, LearningRateSchedule.Linear, "A time budget needs --schedule constant")]
    public void Bad_budgets_name_the_option(double? seconds, int? steps, LearningRateSchedule schedule, string message)
    {
        var error = Assert.Throws<SharpTuneException>(() => new TrainingOptions { MaxSeconds = seconds, MaxSteps = steps, Schedule = schedule }.Validate());
        Assert.Contains(message, error.Message);
    }
}
