using SharpTune.Cli;
using SharpTune.Strategies;
using SharpTune.Training;

namespace SharpTune.Tests.Cli;

public class TrainConsoleProgressTests
{
    [Fact]
    public void Redirected_output_gets_one_line_per_epoch_and_evaluation_and_a_red_failed_audit()
    {
        var (console, writer) = TrainCliHarness.Console();
        var progress = new ConsoleProgress(console);
        Assert.False(progress.Live);

        progress.Run(() =>
        {
            progress.Report(new TrainingStartedEvent(Epochs: 2, StepsPerEpoch: 3, Examples: 24, PaddingRatio: 0.1, FromFeatureCache: false));
            for (int step = 1; step <= 6; step++)
                progress.Report(new StepEvent((step - 1) / 3, step, 6, 0.5, 1e-3, 100, TimeSpan.FromSeconds(step)));
            progress.Report(new EvaluationEvent(1, 6, 0.5, new Dictionary<string, double> { ["loss"] = 0.4, ["accuracy"] = 0.75, ["f1/yes"] = 0.7 }, IsBest: false));
            progress.Report(new EarlyStoppingEvent(0, 3, 0.35, "loss"));
            progress.Report(new AuditEvent(new AuditReport([new AuditEntry("bert.pooler.dense.weight", ParameterGroups.Pooler, false, true, 0.5)])));
            return 0;
        });

        string[] lines = writer.ToString().Split('\n');
        Assert.Single(lines, l => l.StartsWith("epoch 1/2: step 3/6", StringComparison.Ordinal));
        Assert.Single(lines, l => l.StartsWith("epoch 2/2: step 6/6", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("step 4/6"));
        string text = writer.ToString();
        Assert.Contains("eval epoch 2 step 6: train loss 0.5000, loss 0.4000, accuracy 0.7500", text);
        Assert.DoesNotContain("f1/yes", text);
        Assert.Contains("Early stopping:", text);
        Assert.Contains("restored the weights of epoch 1, step 3", text);
        Assert.Contains("Freeze audit: FAILED", text);
        Assert.Contains("bert.pooler.dense.weight (frozen but changed)", text);
    }

    [Fact]
    public void The_parameter_table_has_a_total_row_with_the_trainable_share()
    {
        var (console, writer) = TrainCliHarness.Console();
        using var model = TinyModels.Classifier("mean");
        TrainingPlan plan = StrategyApplier.Apply(model, new FrozenStrategy());

        new ConsoleProgress(console).Report(new PlanEvent(plan));

        string text = writer.ToString();
        Assert.Contains("Strategy frozen", text);
        Assert.Contains($"{plan.TrainablePercent:F2}% trainable", text);
        Assert.Contains(plan.TotalParameters.ToString("N0", System.Globalization.CultureInfo.InvariantCulture), text);
        Assert.Contains("layer 1", text);
    }
}
