using SharpTune.Checkpoints;

namespace SharpTune.Tests.Cli;

public sealed class NumericFaultCliTests : IDisposable
{
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    [Fact]
    public void A_learning_rate_that_blows_up_stops_naming_the_step_and_saves_finite_weights()
    {
        string run = cli.PathOf("blown");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", cli.TrainFile,
            "--strategy", "full", "--epochs", "3", "--batch-size", "8", "--lr", "1e30", "--head-lr", "1e30", "--warmup-ratio", "0", "--out", run);
        Assert.True(exit == 3, output);
        Assert.Matches(@"Training stopped: the (loss is (NaN|∞|-∞|Infinity)|gradient of \S+ is not finite \(total norm \S+\)) at step \d+ \(epoch \d, batch \d\);", output);
        using var saved = SharpTune.TextClassifier.Load(run);
        Assert.All(saved.Model.parameters(), p => Assert.True(p.detach().isfinite().all().item<bool>()));
        Assert.True(File.Exists(Path.Combine(run, ClassifierCheckpoint.SettingsFile)));
    }
}
