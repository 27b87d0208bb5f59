using System.Diagnostics;
using System.Globalization;
using SharpTune.Checkpoints;

namespace SharpTune.Tests.Cli;

/// <summary>
/// <c>compare --out DIR</c> takes the run-directory lock train takes: while one compare writes DIR, a second compare and a
/// train into DIR fail at once, naming it; the first is unharmed.
/// </summary>
public sealed class ConcurrentCompareTests : IDisposable
{
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    private string[] CompareArgs(string output, string epochs) =>
        ["compare", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--eval", cli.EvalFile, "--strategies", "full",
            "--epochs", epochs, "--batch-size", "8", "--train-limit", "8", "--eval-limit", "4", "--out", output];

    [Fact]
    public void A_second_compare_or_a_train_into_the_same_out_fails_at_once_while_a_compare_runs()
    {
        string output = cli.PathOf("compare");
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli")) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment[SharpTune.Native.TorchRuntime.ThreadsVariable] = SharpTune.Native.TorchRuntime.Threads.ToString(CultureInfo.InvariantCulture);
        foreach (string arg in CompareArgs(output, "100000")) start.ArgumentList.Add(arg);
        using var first = Process.Start(start)!;
        _ = first.StandardOutput.ReadToEndAsync();
        _ = first.StandardError.ReadToEndAsync();
        string lockFile = DirectoryLock.LockFileOf(output);
        try
        {
            // The lock file exists exactly while a holder has it (this folder is fresh: nothing stale).
            var clock = Stopwatch.StartNew();
            while (!first.HasExited && !File.Exists(lockFile) && clock.Elapsed < TimeSpan.FromMinutes(3)) Thread.Sleep(5);
            Assert.False(first.HasExited, "the first compare ended before the second started");

            string expected = $"--out {output}: another process is writing this directory (it holds {lockFile})";
            clock.Restart();
            var (exit, text) = TrainCliHarness.Run(CompareArgs(output, "1"));
            Assert.Equal(1, exit);
            Assert.Contains(expected, text);
            Assert.True(clock.Elapsed.TotalSeconds < 10, $"the second compare took {clock.Elapsed.TotalSeconds:F1} s to fail"); // before reading data or a model

            var (trainExit, trainText) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--epochs", "1",
                "--batch-size", "8", "--out", output, "--overwrite");
            Assert.Equal(1, trainExit);
            Assert.Contains(expected, trainText);
            Assert.False(first.HasExited, "the second compare or the train stopped the first");
        }
        finally
        {
            first.Kill();
            first.WaitForExit();
        }
        // The first one killed (no cleanup ran), a compare into the directory runs, and lets the lock go when it ends.
        var (again, againText) = TrainCliHarness.Run(CompareArgs(output, "1"));
        Assert.True(again == 0, againText);
        Assert.True(File.Exists(Path.Combine(output, "compare.json")));
        using var free = DirectoryLock.Acquire(output);
    }

    [Fact]
    public void A_compare_does_not_write_a_run_directory_another_process_holds()
    {
        // A previous comparison of frozen and full in OUT; then a train --out OUT/full (here: its lock, held by this test)
        // writes the run directory a new compare into OUT would replace second: the compare stops before the first.
        string output = cli.PathOf("held");
        string[] args = [.. CompareArgs(output, "1")];
        args[Array.IndexOf(args, "--strategies") + 1] = "frozen,full";
        var (first, firstText) = TrainCliHarness.Run(args);
        Assert.True(first == 0, firstText);
        string run = Path.Combine(output, "full");
        string[] records = [Path.Combine(output, "frozen", "summary.json"), Path.Combine(run, "summary.json"), Path.Combine(output, "compare.json")];
        string[] before = [.. records.Select(File.ReadAllText)];
        using (var held = DirectoryLock.Acquire(run))
        {
            var (exit, text) = TrainCliHarness.Run(args);
            Assert.Equal(1, exit);
            Assert.Contains($"{run}: another process is writing this directory (it holds {DirectoryLock.LockFileOf(run)})", text);
            Assert.Equal(before, records.Select(File.ReadAllText)); // nothing replaced: not frozen's run, not the comparison
        }
        var (again, againText) = TrainCliHarness.Run(args);
        Assert.True(again == 0, againText);
        Assert.NotEqual(before[1], File.ReadAllText(records[1])); // replaced once nobody holds it
        using var free = DirectoryLock.Acquire(run); // released when the compare ended
    }
}
