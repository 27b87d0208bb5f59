using SharpTune.Cli.Commands;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli;

/// <summary>The sharptune command line: thin commands over the library.</summary>
public static class CliApp
{
    /// <summary>Columns a console gets when its output is a file or a pipe: wide enough that no table line wraps.</summary>
    public const int RedirectedWidth = 1000;

    /// <summary>
    /// A console writing to <paramref name="writer"/>. Written to a file or a pipe (<paramref name="redirected"/>) there
    /// is no terminal width to respect, and Spectre would assume 80 columns and wrap tables mid-number: it gets
    /// <see cref="RedirectedWidth"/> columns instead, and no colour codes.
    /// </summary>
    public static IAnsiConsole ConsoleFor(TextWriter writer, bool redirected)
    {
        if (!redirected) return AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer) });
        // A file gets plain text: no colour codes, no live progress, lines as long as they are.
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = RedirectedWidth;
        return console;
    }

    /// <summary>
    /// Runs the CLI with the given arguments, writing output to <paramref name="console"/> and the one-line error of a
    /// failure to <paramref name="errors"/>. Defaults: standard output and standard error; with only
    /// <paramref name="console"/> given, errors go there too.
    /// </summary>
    public static int Run(string[] args, IAnsiConsole? console = null, IAnsiConsole? errors = null)
    {
        errors ??= console ?? ConsoleFor(Console.Error, Console.IsErrorRedirected);
        console ??= ConsoleFor(Console.Out, Console.IsOutputRedirected);
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("sharptune");
            config.ConfigureConsole(console);
            config.PropagateExceptions();
            config.UseStrictParsing(); // an unknown option is an error, not silently ignored
            config.SetInterceptor(new HubModels(errors)); // --model org/name[@revision]: downloaded from the hub first
            config.AddCommand<VersionCommand>("version").WithDescription("Print the SharpTune and libtorch versions.");
            config.AddCommand<InspectCommand>("inspect").WithDescription("Print a model's architecture and its parameter counts per module.");
            config.AddCommand<EmbedCommand>("embed").WithDescription("Print the embedding of a text (or text pair), or write those of a whole file (--data, --output .npy/.csv/.safetensors/.parquet).");
            config.AddCommand<ImportOnnxCommand>("import-onnx").WithDescription("Import an ONNX BERT export into a Hugging Face model directory.");
            config.AddCommand<ExportOnnxCommand>("export-onnx").WithDescription("Export a run (encoder + head, output logits) or a bare encoder (last_hidden_state) to ONNX for ONNX Runtime.");
            config.AddCommand<Commands.TrainCommand>("train").WithDescription("Fine-tune a pretrained encoder with a new head; writes the model and the run's record to --out.");
            config.AddCommand<Commands.EvaluateCommand>("evaluate").WithDescription("Loss and metrics of a trained model on labelled data.");
            config.AddCommand<Commands.PredictCommand>("predict").WithDescription("Labels and per-class probabilities of texts.");
            config.AddCommand<Commands.CompareCommand>("compare").WithDescription("Train the same model and data under several strategies and compare time, memory and metrics; writes compare.json, compare.md, compare.png.");
            config.AddCommand<Commands.ReportCommand>("report").WithDescription("Write one self-contained HTML page (report.html) for a run or comparison directory: tables, audit, curves, confusion matrix, charts.");
            config.AddCommand<Commands.DemoCommand>("demo").WithDescription("Compare frozen, top:2, bitfit, lora and full on the packaged MiniLM and the shipped spam sample (several minutes on a CPU; no network).");
        });
        try
        {
            return app.Run(args);
        }
        catch (Exception e) when (e is CommandAppException or SharpTuneException or IOException or InvalidDataException or InvalidOperationException or ArgumentException)
        {
            errors.MarkupLine("[red]error:[/] " + Markup.Escape(e.Message));
            return 1;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("SHARPTUNE_DEBUG") is null)
        {
            // A failure that is not bad input (a libtorch error, a bug): one readable line, not a stack dump.
            // Files already written (run records, finished compare rows) stay as they are.
            string first = e.Message.Split('\n', 2)[0];
            errors.MarkupLine("[red]internal error:[/] " + Markup.Escape($"{e.GetType().Name}: {first}") +
                " (set SHARPTUNE_DEBUG=1 for the stack trace)");
            return 3;
        }
    }
}

internal sealed class VersionCommand(IAnsiConsole console) : Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        console.WriteLine("sharptune " + typeof(SharpTuneException).Assembly.GetName().Version);
        console.WriteLine(SharpTune.Native.TorchRuntime.EnsureLoaded());
        return 0;
    }
}
