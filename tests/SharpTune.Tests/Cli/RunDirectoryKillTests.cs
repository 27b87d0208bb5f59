using System.Diagnostics;
using SharpTune.Checkpoints;

namespace SharpTune.Tests.Cli;

/// <summary>
/// A real <c>sharptune train --overwrite</c> process killed with SIGKILL while it saves: the previous run directory is
/// still there, byte for byte, and loads; the next run clears what the killed one left.
/// </summary>
public sealed class RunDirectoryKillTests : IDisposable
{
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    private static Dictionary<string, byte[]> Snapshot(string directory) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(directory, f), File.ReadAllBytes);

    [Fact]
    public void Killing_train_during_the_save_leaves_the_previous_run_intact_and_loadable()
    {
        string run = cli.PathOf("run");
        string[] args = ["train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--strategy", "frozen", "--epochs", "1",
            "--batch-size", "8", "--out", run];
        var (exit, output) = TrainCliHarness.Run(args);
        Assert.True(exit == 0, output);
        var previous = Snapshot(run);
        float[] expected;
        using (var loaded = TextClassifier.Load(run)) expected = loaded.Predict(["w2 w3"])[0].Probabilities.Values.ToArray();

        string cliPath = Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli");
        Assert.True(File.Exists(cliPath), $"{cliPath}: the CLI is copied beside the tests");
        bool killedMidSave = false;
        for (int attempt = 0; attempt < 3 && !killedMidSave; attempt++)
        {
            var start = new ProcessStartInfo(cliPath) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string arg in args.Append("--overwrite").Append("--seed").Append((7 + attempt).ToString(System.Globalization.CultureInfo.InvariantCulture)))
                start.ArgumentList.Add(arg);
            using var process = Process.Start(start)!;
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            // The save has begun once config.json exists in the process's temporary sibling: kill it then.
            string pattern = $".run.tmp-{process.Id}-*";
            var clock = Stopwatch.StartNew();
            while (!process.HasExited && clock.Elapsed < TimeSpan.FromMinutes(3))
            {
                string? staging = Directory.GetDirectories(cli.Folder, pattern).FirstOrDefault();
                if (staging is not null && File.Exists(Path.Combine(staging, "config.json")))
                {
                    process.Kill(); // SIGKILL: no finally block, no handler runs
                    break;
                }
                Thread.Sleep(1);
            }
            process.WaitForExit();
            bool leftTemporary = Directory.GetDirectories(cli.Folder, pattern).Length > 0;
            if (leftTemporary)
            {
                // Killed before the swap: the old run, every byte, and it still loads and predicts as before.
                killedMidSave = true;
                var after = Snapshot(run);
                Assert.Equal(previous.Keys.Order(), after.Keys.Order());
                Assert.All(previous, p => Assert.True(p.Value.AsSpan().SequenceEqual(after[p.Key]), $"{p.Key} changed"));
                using var loaded = TextClassifier.Load(run);
                Assert.Equal(expected, loaded.Predict(["w2 w3"])[0].Probabilities.Values.ToArray());
            }
            else
            {
                // The save finished before the kill landed: then the new run is there, complete.
                using var loaded = TextClassifier.Load(run);
                previous = Snapshot(run);
                expected = loaded.Predict(["w2 w3"])[0].Probabilities.Values.ToArray();
            }
        }
        Assert.True(killedMidSave, "no attempt killed the process during its save");

        // The next run removes the killed process's temporary directory and replaces the run.
        (exit, output) = TrainCliHarness.Run([.. args, "--overwrite"]);
        Assert.True(exit == 0, output);
        Assert.Empty(Directory.GetDirectories(cli.Folder, ".run.tmp-*"));
        Assert.True(File.Exists(Path.Combine(run, HfModelDirectory.WeightsFileName)));
    }
}
