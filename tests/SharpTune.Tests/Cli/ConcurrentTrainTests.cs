using System.Diagnostics;
using System.Globalization;
using SharpTune.Checkpoints;

namespace SharpTune.Tests.Cli;

/// <summary>Two <c>train --out SAME</c> at once: the second fails at once, naming the directory; the first is unharmed.</summary>
public sealed class ConcurrentTrainTests : IDisposable
{
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    [Fact]
    public void A_second_train_into_the_same_out_fails_at_once_while_the_first_runs()
    {
        string run = cli.PathOf("run");
        string[] args = ["train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--strategy", "full", "--epochs", "200",
            "--batch-size", "8", "--out", run, "--overwrite"];
        string cliPath = Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli");
        var start = new ProcessStartInfo(cliPath) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment[SharpTune.Native.TorchRuntime.ThreadsVariable] = SharpTune.Native.TorchRuntime.Threads.ToString(CultureInfo.InvariantCulture);
        foreach (string arg in args) start.ArgumentList.Add(arg);
        using var first = Process.Start(start)!;
        _ = first.StandardOutput.ReadToEndAsync();
        _ = first.StandardError.ReadToEndAsync();
        try
        {
            // The first process has taken the lock once its temporary run directory exists (the lock comes just before it).
            var clock = Stopwatch.StartNew();
            while (!first.HasExited && Directory.GetDirectories(cli.Folder, $".run.tmp-{first.Id}-*").Length == 0 && clock.Elapsed < TimeSpan.FromMinutes(3))
                Thread.Sleep(5);
            Assert.False(first.HasExited, "the first train ended before the second started");

            clock.Restart();
            var (exit, output) = TrainCliHarness.Run(args);
            double seconds = clock.Elapsed.TotalSeconds;
            Assert.Equal(1, exit);
            Assert.Contains($"--out {run}: another process is writing this directory (it holds {DirectoryLock.LockFileOf(run)})", output);
            Assert.True(seconds < 10, $"the second train took {seconds:F1} s to fail"); // before reading data or a model
            Assert.False(first.HasExited, "the second train stopped the first");
        }
        finally
        {
            first.Kill();
            first.WaitForExit();
        }
        // With the first process gone (SIGKILL: no cleanup ran), the lock is free again.
        using var free = DirectoryLock.Acquire(run);
    }
}
