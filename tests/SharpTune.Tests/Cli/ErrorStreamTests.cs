using System.Diagnostics;

namespace SharpTune.Tests.Cli;

/// <summary>A failure is one readable line on standard error, and standard output stays clean (it may be piped into a file).</summary>
public sealed class ErrorStreamTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sharptune-stderr-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Bad_input_is_one_line_on_stderr_and_nothing_on_stdout_of_the_real_process()
    {
        string missing = Path.Combine(_folder, "missing.csv");
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (string arg in new[] { "train", "--train", missing, "--out", Path.Combine(_folder, "run") }) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdoutTask = process.StandardOutput.ReadToEndAsync();
        string stderr = await process.StandardError.ReadToEndAsync();
        string stdout = await stdoutTask;
        Assert.True(process.WaitForExit(120_000), "the CLI did not exit");

        Assert.Equal(1, process.ExitCode);
        Assert.Equal("", stdout);
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal($"error: {missing}: --train file not found.", line);
        Assert.False(Directory.Exists(Path.Combine(_folder, "run")));
    }

    [Fact]
    public void The_library_entry_point_sends_the_error_to_its_error_console()
    {
        var (output, outWriter) = TrainCliHarness.Console();
        var (errors, errWriter) = TrainCliHarness.Console();
        int exit = SharpTune.Cli.CliApp.Run(["evaluate", "--model", _folder, "--data", Path.Combine(_folder, "none.csv")], output, errors);

        Assert.Equal(1, exit);
        Assert.Equal("", outWriter.ToString());
        Assert.StartsWith("error: ", errWriter.ToString());
    }
}
