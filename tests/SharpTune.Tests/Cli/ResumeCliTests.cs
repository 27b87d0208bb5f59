using System.Diagnostics;
using System.Globalization;
using SharpTune.Checkpoints;
using SharpTune.Training;

namespace SharpTune.Tests.Cli;

/// <summary>
/// A real <c>sharptune train --save-steps</c> process killed with SIGKILL once a checkpoint exists, then
/// <c>train --resume</c>: the final weights equal those of an uninterrupted run (CPU, fp32).
/// </summary>
public sealed class ResumeCliTests : IDisposable
{
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    // 48 examples in batches of 8: 6 steps an epoch; checkpoints every 4 steps (mid-epoch) and at every epoch end.
    private string[] Args(params string[] more) =>
    [
        "train", "--train", cli.TrainFile, "--eval", cli.EvalFile, "--strategy", "full", "--epochs", "12", "--batch-size", "8",
        "--save-steps", "4", "--save-total-limit", "3", .. more,
    ];

    [Fact]
    public void A_run_killed_with_SIGKILL_and_resumed_ends_with_the_weights_of_an_uninterrupted_run()
    {
        string whole = cli.PathOf("whole");
        var (exit, output) = TrainCliHarness.Run(Args("--model", cli.ModelDirectory, "--out", whole));
        Assert.True(exit == 0, output);

        string killed = cli.PathOf("killed");
        string cliPath = Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli");
        var start = new ProcessStartInfo(cliPath) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment[SharpTune.Native.TorchRuntime.ThreadsVariable] = SharpTune.Native.TorchRuntime.Threads.ToString(CultureInfo.InvariantCulture);
        foreach (string arg in Args("--model", cli.ModelDirectory, "--out", killed)) start.ArgumentList.Add(arg);
        int newestAtKill;
        using (var process = Process.Start(start)!)
        {
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            var clock = Stopwatch.StartNew();
            // Kill as soon as a checkpoint is complete (its directory appears whole, renamed into place).
            while (!process.HasExited && TrainingCheckpoint.List(killed).Count == 0 && clock.Elapsed < TimeSpan.FromMinutes(3)) Thread.Sleep(1);
            process.Kill(); // SIGKILL: no handler, no finally
            process.WaitForExit();
            Assert.NotEqual(0, process.ExitCode);
        }
        var left = TrainingCheckpoint.List(killed);
        Assert.NotEmpty(left);
        newestAtKill = left[^1].Step;
        Assert.True(newestAtKill < 72, $"the process was killed after its last step ({newestAtKill})");
        Assert.False(File.Exists(Path.Combine(killed, HfModelDirectory.WeightsFileName)), "the killed run has no final model");

        (exit, output) = TrainCliHarness.Run(Args("--resume", killed));
        Assert.True(exit == 0, output);
        Assert.Contains($"resuming {TrainingCheckpoint.DirectoryOf(killed, newestAtKill)}", output);

        var expected = SafeTensors.Load(Path.Combine(whole, HfModelDirectory.WeightsFileName));
        var actual = SafeTensors.Load(Path.Combine(killed, HfModelDirectory.WeightsFileName));
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        double difference = expected.Keys.Max(k => (expected[k] - actual[k]).abs().max().item<float>());
        Assert.True(difference <= 1e-6, $"max |diff| {difference} (resumed from step {newestAtKill})");
        // The checkpoints stay in the run, the newest three.
        Assert.Equal([66, 68, 72], TrainingCheckpoint.List(killed).Select(c => c.Step));
        Assert.Equal([66, 68, 72], TrainingCheckpoint.List(whole).Select(c => c.Step));
    }

    [Fact]
    public void Train_model_RUN_DIR_continues_the_saved_head_and_labels()
    {
        // A learning rate of 1e-6 for 6 AdamW steps moves a weight by at most about 6e-6: the continued run ends within
        // 1e-4 of the saved one, which a new, randomly initialised head (normal(0, 0.02)) would not.
        string run = cli.TrainedRun;
        string continued = cli.PathOf("continued");
        var (exit, output) = TrainCliHarness.Run("train", "--model", run, "--train", cli.TrainFile, "--strategy", "frozen", "--epochs", "1",
            "--batch-size", "8", "--lr", "1e-6", "--head-lr", "1e-6", "--out", continued);
        Assert.True(exit == 0, output);
        Assert.Contains("continuing", output);
        var before = SafeTensors.Load(Path.Combine(run, HfModelDirectory.WeightsFileName));
        var after = SafeTensors.Load(Path.Combine(continued, HfModelDirectory.WeightsFileName));
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        Assert.All(before.Keys, k => Assert.True((before[k] - after[k]).abs().max().item<float>() <= 1e-4, k));
        Assert.Contains(before.Keys, k => (before[k] - after[k]).abs().max().item<float>() > 0); // it did train
        using var loaded = TextClassifier.Load(continued);
        Assert.Equal(["no", "yes"], loaded.Labels.Names);
    }

    [Fact]
    public void Resume_with_model_is_an_error_naming_both_flags()
    {
        var (exit, output) = TrainCliHarness.Run(Args("--resume", cli.Folder, "--model", cli.ModelDirectory));
        Assert.Equal(1, exit);
        Assert.Contains("--resume continues the checkpoint's model; do not give --model.", output);
    }
}
