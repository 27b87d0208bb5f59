using SharpTune.Cli;
using SharpTune.Data;
using Spectre.Console;

namespace SharpTune.Tests.Cli;

/// <summary>
/// A temporary folder with a tiny random model and toy CSVs (label yes when w2 occurs), and a way to run the CLI
/// on a captured console. <see cref="TrainedRun"/> trains once (frozen, 2 epochs) for the evaluate and predict tests.
/// </summary>
public sealed class TrainCliHarness : IDisposable
{
    private readonly Lazy<string> trainedRun;

    public TrainCliHarness()
    {
        Folder = Directory.CreateTempSubdirectory("sharptune-cli-").FullName;
        ModelDirectory = TinyModels.Directory(Path.Combine(Folder, "tiny-model"));
        TrainFile = WriteCsv("train.csv", TinyModels.ToyTexts(48, seed: 1));
        EvalFile = WriteCsv("eval.csv", TinyModels.ToyTexts(16, seed: 2));
        trainedRun = new Lazy<string>(() =>
        {
            string run = PathOf("trained-run");
            var (exit, output) = Run("train", "--model", ModelDirectory, "--train", TrainFile, "--eval", EvalFile,
                "--strategy", "frozen", "--epochs", "2", "--batch-size", "8", "--lr", "1e-2", "--out", run);
            Assert.True(exit == 0, output);
            return run;
        });
    }

    public string Folder { get; }
    public string ModelDirectory { get; }
    public string TrainFile { get; }
    public string EvalFile { get; }

    /// <summary>A run directory trained with the frozen strategy for 2 epochs (trained on first use).</summary>
    public string TrainedRun => trainedRun.Value;

    public string PathOf(string name) => Path.Combine(Folder, name);

    public string WriteCsv(string name, IEnumerable<TextExample> examples) =>
        Write(name, "text,label\n" + string.Concat(examples.Select(e => $"{e.Text},{e.Label}\n")));

    public string Write(string name, string content)
    {
        string path = PathOf(name);
        File.WriteAllText(path, content);
        return path;
    }

    /// <summary>Runs sharptune with <paramref name="args"/> on a wide, non-interactive console; returns the exit code and the output.</summary>
    public static (int Exit, string Output) Run(params string[] args) => RunOn(interactive: false, args);

    /// <summary>As <see cref="Run"/>; <paramref name="interactive"/> makes the console a live ANSI terminal.</summary>
    public static (int Exit, string Output) RunOn(bool interactive, params string[] args)
    {
        var (console, writer) = Console(interactive);
        int exit = CliApp.Run(args, console);
        return (exit, writer.ToString());
    }

    public static (IAnsiConsole Console, StringWriter Writer) Console(bool interactive = false)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = interactive ? AnsiSupport.Yes : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Standard : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = SharpTune.Cli.CliApp.RedirectedWidth; // as sharptune writes to a file or pipe: long lines (paths) stay whole
        return (console, writer);
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}
