using System.Diagnostics;
using System.Globalization;
using SharpTune.Checkpoints;
using SharpTune.Lora;
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

    // 48 examples in batches of 8: 6 steps an epoch; checkpoints every 4 steps (mid-epoch) and at every epoch end. The token
    // run reads 48 toy sentences in windows of 16 tokens (more windows than sentences, so more steps).
    private string[] Args(string kind, params string[] more) =>
    [
        "train", "--epochs", "12", "--batch-size", "8", "--save-steps", "4", "--save-total-limit", "3", "--log-steps", "1",
        .. kind switch
        {
            "token" => (string[])["--train", TokenFile("train.conll", 48, 1), "--eval", TokenFile("eval.conll", 12, 2), "--strategy", "full", "--max-length", "16"],
            "lora" => ["--train", cli.TrainFile, "--eval", cli.EvalFile, "--strategy", "lora:r=2,alpha=8"],
            _ => ["--train", cli.TrainFile, "--eval", cli.EvalFile, "--strategy", "full"],
        },
        .. more,
    ];

    // CoNLL sentences over the tiny vocabulary: a word is B-X when its number is a multiple of 3.
    private string TokenFile(string name, int count, int seed)
    {
        if (File.Exists(cli.PathOf(name))) return cli.PathOf(name);
        var random = new Random(seed);
        var text = new System.Text.StringBuilder();
        for (int i = 0; i < count; i++)
        {
            foreach (int word in Enumerable.Range(0, random.Next(3, 20)).Select(_ => random.Next(3, 90)))
                text.Append(CultureInfo.InvariantCulture, $"{TinyModels.Word(word)} {(word % 3 == 0 ? "B-X" : "O")}\n");
            text.Append('\n');
        }
        return cli.Write(name, text.ToString());
    }

    private static double MaxDifference(string first, string second)
    {
        var expected = SafeTensors.Load(first);
        var actual = SafeTensors.Load(second);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        return expected.Keys.Max(k => (expected[k] - actual[k]).abs().max().item<float>());
    }

    [Theory]
    [InlineData("full")]
    [InlineData("lora")]
    [InlineData("token")]
    public void A_run_killed_with_SIGKILL_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(string kind)
    {
        string whole = cli.PathOf("whole");
        var (exit, output) = TrainCliHarness.Run(Args(kind, "--model", cli.ModelDirectory, "--out", whole));
        Assert.True(exit == 0, output);
        var kept = TrainingCheckpoint.List(whole).Select(c => c.Step).ToList();
        Assert.Equal(3, kept.Count);

        string killed = cli.PathOf("killed");
        string cliPath = Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli");
        var start = new ProcessStartInfo(cliPath) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment[SharpTune.Native.TorchRuntime.ThreadsVariable] = SharpTune.Native.TorchRuntime.Threads.ToString(CultureInfo.InvariantCulture);
        foreach (string arg in Args(kind, "--model", cli.ModelDirectory, "--out", killed)) start.ArgumentList.Add(arg);
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
        Assert.True(newestAtKill < kept[^1], $"the process was killed after its last step ({newestAtKill})");
        Assert.False(File.Exists(Path.Combine(killed, HfModelDirectory.WeightsFileName)), "the killed run has no final model");

        (exit, output) = TrainCliHarness.Run(Args(kind, "--resume", killed));
        Assert.True(exit == 0, output);
        Assert.Contains($"resuming {TrainingCheckpoint.DirectoryOf(killed, newestAtKill)}", output);

        double difference = MaxDifference(Path.Combine(whole, HfModelDirectory.WeightsFileName), Path.Combine(killed, HfModelDirectory.WeightsFileName));
        Assert.True(difference <= 1e-6, $"max |diff| {difference} (resumed from step {newestAtKill})");
        // metrics.jsonl holds the whole run: the killed process's lines up to the checkpoint, then the resumed part — each
        // step and evaluation once, in order, as the uninterrupted run wrote them.
        var (wholeSteps, wholeEvaluations) = RunRecorder.ReadMetrics(whole);
        var (resumedSteps, resumedEvaluations) = RunRecorder.ReadMetrics(killed);
        Assert.Equal(Enumerable.Range(1, kept[^1]), wholeSteps.Select(e => e.Step));
        Assert.Equal(wholeSteps.Select(e => (e.Epoch, e.Step)), resumedSteps.Select(e => (e.Epoch, e.Step)));
        Assert.Equal(wholeEvaluations.Select(e => (e.Epoch, e.Step)), resumedEvaluations.Select(e => (e.Epoch, e.Step)));
        Assert.Equal(wholeSteps[0].Loss, resumedSteps[0].Loss, 6); // the first line is the killed process's, carried over
        // The run's clock continues across the resume: elapsed time never goes back (the resumed process starts from the checkpoint's).
        var backwards = resumedSteps.Zip(resumedSteps.Skip(1)).Where(p => p.Second.Elapsed < p.First.Elapsed).Select(p => $"{p.First.Step}→{p.Second.Step}").ToList();
        Assert.True(backwards.Count == 0, $"elapsed time goes back at steps {string.Join(", ", backwards)}");
        // The checkpoints stay in the run, the newest three.
        Assert.Equal(kept, TrainingCheckpoint.List(killed).Select(c => c.Step));
        if (kind == "lora")
        {
            // The resumed run's PEFT adapter equals the uninterrupted run's and names the same base model.
            string adapter = Path.Combine(killed, PeftAdapter.RunSubdirectory);
            difference = MaxDifference(Path.Combine(whole, PeftAdapter.RunSubdirectory, PeftAdapter.WeightsFile), Path.Combine(adapter, PeftAdapter.WeightsFile));
            Assert.True(difference <= 1e-6, $"adapter max |diff| {difference}");
            Assert.Equal(Path.GetFullPath(cli.ModelDirectory), PeftAdapter.ReadConfig(adapter).BaseModelNameOrPath);
        }
    }

    [Fact]
    public void Overwriting_a_run_keeps_only_the_new_runs_checkpoints()
    {
        // 48 examples in batches of 8: 6 steps an epoch. The first run writes checkpoints 4, 6, 8, 12, 16, 18; the second,
        // of one epoch, 4 and 6 — and none of the first run's may be left in its place for --resume to pick up.
        string run = cli.PathOf("replaced");
        string[] args = ["train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--strategy", "full", "--batch-size", "8", "--save-steps", "4", "--out", run];
        var (exit, output) = TrainCliHarness.Run([.. args, "--epochs", "3"]);
        Assert.True(exit == 0, output);
        Assert.Equal([4, 6, 8, 12, 16, 18], TrainingCheckpoint.List(run).Select(c => c.Step));

        (exit, output) = TrainCliHarness.Run([.. args, "--epochs", "1", "--overwrite"]);
        Assert.True(exit == 0, output);
        Assert.Equal([4, 6], TrainingCheckpoint.List(run).Select(c => c.Step));
        using var state = TrainingCheckpoint.Read(TrainingCheckpoint.Newest(run));
        Assert.Equal("1", state.Fixed["--epochs"]);
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
        var (exit, output) = TrainCliHarness.Run(Args("full", "--resume", cli.Folder, "--model", cli.ModelDirectory));
        Assert.Equal(1, exit);
        Assert.Contains("--resume continues the checkpoint's model; do not give --model.", output);
    }
}
