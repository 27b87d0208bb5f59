using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

/// <summary>Options naming the columns of a data file, shared by train, evaluate and predict.</summary>
internal class DataSettings : CommandSettings
{
    [CommandOption("--text-column <COLUMN>")]
    [Description("Column of the text. Default: text, sentence or sentence1.")]
    public string? TextColumn { get; set; }

    [CommandOption("--text-pair-column <COLUMN>")]
    [Description("Column of the second text of a pair. Default: text_pair or sentence2 when present.")]
    public string? TextPairColumn { get; set; }

    [CommandOption("--label-column <COLUMN>")]
    [Description("Column of the label(s) or regression target. Default: label or labels.")]
    public string? LabelColumn { get; set; }

    [CommandOption("--skip-bad-rows")]
    [Description("Skip unreadable rows (reported) instead of stopping at the first one.")]
    public bool SkipBadRows { get; set; }

    [CommandOption("--tag-column <N>")]
    [Description("Token task, CoNLL files: the column of the tag, 0-based from the start or negative from the end (-1, the default, is the last column).")]
    [DefaultValue(-1)]
    public int TagColumn { get; set; } = -1;

    public TokenDataOptions TokenDataOptions(bool requireTags = true) => new() { TagColumn = TagColumn, SkipBadRows = SkipBadRows, RequireTags = requireTags };

    public DataOptions DataOptions(TaskType? task, bool readLabels = true) => new()
    {
        TextColumn = TextColumn, TextPairColumn = TextPairColumn, LabelColumn = LabelColumn,
        SkipBadRows = SkipBadRows, Task = task, ReadLabels = readLabels,
    };
}

/// <summary>Small helpers the commands share.</summary>
internal static class CommandSupport
{
    public static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    /// <summary>Loads a data file; an empty one is an error naming the file.</summary>
    public static LoadedData Load(string path, DataOptions options, IAnsiConsole console)
    {
        LoadedData data = TextDataset.Load(path, options);
        ReportSkipped(data, console);
        if (data.Examples.Count == 0)
            throw new SharpTuneException($"{path}: no examples{(data.SkippedRows > 0 ? $" (all {data.SkippedRows} rows skipped)" : "")}.");
        return data;
    }

    /// <summary>A console that writes nowhere: with --format json the output is the JSON object alone (skipped rows are listed in it).</summary>
    public static IAnsiConsole Silent() => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(TextWriter.Null),
    });

    /// <summary>Loads tagged sentences; an empty file is an error naming the file.</summary>
    public static LoadedTokenData LoadTagged(string path, TokenDataOptions options, IAnsiConsole console)
    {
        LoadedTokenData data = TokenDataset.Load(path, options);
        if (data.SkippedSentences > 0)
        {
            console.MarkupLineInterpolated($"[yellow]skipped {data.SkippedSentences} bad sentence(s) of {data.Path}[/]; first reasons:");
            foreach (string reason in data.SkipReasons.Take(3)) console.MarkupLineInterpolated($"  [grey]{reason}[/]");
        }
        if (data.Sentences.Count == 0)
            throw new SharpTuneException($"{path}: no sentences{(data.SkippedSentences > 0 ? $" (all {data.SkippedSentences} skipped)" : "")}.");
        return data;
    }

    /// <summary>
    /// The training and evaluation files of a sequence task (train, compare): the labels come from the training data
    /// (regression: the target column's name), and the eval labels must be among them.
    /// </summary>
    public static (LoadedData Train, LoadedData? Eval, LabelSet Labels) LoadLabelledFiles(string train, string? eval, DataSettings settings, TaskType? task,
        IAnsiConsole console)
    {
        LoadedData trainData = Load(train, settings.DataOptions(task), console);
        LabelSet labels = trainData.Task == TaskType.Regression ? LabelSet.FromNames([trainData.Columns.Label!]) : LabelSet.FromTraining(trainData.Examples);
        LoadedData? evalData = eval is null ? null : Load(eval, settings.DataOptions(trainData.Task), console);
        if (evalData is not null && trainData.Task != TaskType.Regression) evalData = labels.Check(evalData);
        return (trainData, evalData, labels);
    }

    /// <summary>The training and evaluation files of the token task (train, compare): the tags come from the training sentences, the eval tags must be among them.</summary>
    public static (LoadedTokenData Train, LoadedTokenData? Eval, LabelSet Tags) LoadTaggedFiles(string train, string? eval, DataSettings settings, IAnsiConsole console)
    {
        LoadedTokenData trainData = LoadTagged(train, settings.TokenDataOptions(), console);
        LabelSet tags = TokenDataset.TagSet(trainData.Sentences);
        LoadedTokenData? evalData = eval is null ? null : LoadTagged(eval, settings.TokenDataOptions(), console);
        if (evalData is not null) TokenDataset.CheckTags(evalData.Sentences, tags, eval!);
        return (trainData, evalData, tags);
    }

    /// <summary>Whether --train holds tagged sentences: --task token, or (without --task) a file that looks tagged (<see cref="TokenDataset.LooksTagged"/>).</summary>
    public static bool IsTokenTask(TaskType? task, string train) => task?.PerToken ?? TokenDataset.LooksTagged(train);

    /// <summary>"3 labels (a, b, c)", the first ten named.</summary>
    public static string Describe(LabelSet labels) =>
        $"{labels.Count} labels ({string.Join(", ", labels.Names.Take(10))}{(labels.Count > 10 ? ", …" : "")})";

    /// <summary>"skipped 3 bad rows of F: first reasons …" when rows were skipped.</summary>
    public static void ReportSkipped(LoadedData data, IAnsiConsole console)
    {
        if (data.SkippedRows == 0) return;
        console.MarkupLineInterpolated($"[yellow]skipped {data.SkippedRows} bad row(s) of {data.Path}[/]; first reasons:");
        foreach (string reason in data.SkipReasons.Take(3)) console.MarkupLineInterpolated($"  [grey]{reason}[/]");
    }

    /// <summary>Parses a --task value: single, multi, regression or token (null: inferred from the data).</summary>
    public static TaskType? ParseTask(string? text) => text is null ? null : TaskType.Parse(text);

    /// <summary>Checks a --format value: json or table; true for json.</summary>
    public static bool IsJson(string format) => format.ToLowerInvariant() switch
    {
        "json" => true,
        "table" => false,
        _ => throw new SharpTuneException($"--format must be json or table, got '{format}'."),
    };

    /// <summary>Writes JSON straight to the console's output: no markup, no line wrapping.</summary>
    public static void WriteJson(IAnsiConsole console, JsonNode json) =>
        console.Profile.Out.Writer.WriteLine(json.ToJsonString(IndentedJson));

    public static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    /// <summary>A data file that exists; a directory in its place is named as such, not as "not found".</summary>
    public static void RequireFile(string path, string option)
    {
        if (Directory.Exists(path)) throw new SharpTuneException($"{path}: {option} is a directory; give a data file (.csv, .tsv, .jsonl or .txt).");
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: {option} file not found.");
    }

    /// <summary>
    /// Sets what runs <paramref name="model"/> (loaded from the settings' --model and --adapter) for a job checked and
    /// ready to run, so that bad data never costs an export: see <see cref="Export.RuntimeSelector"/>. Says which on
    /// <paramref name="messages"/> ("Runtime: onnx (auto: …)").
    /// </summary>
    public static Export.RuntimeChoice UseRuntime(TaskModel model, InferenceSettings settings, Export.RuntimeRequest runtime, IAnsiConsole messages)
    {
        Export.RuntimeChoice choice = Export.RuntimeSelector.Apply(model, settings.Model, settings.Adapter, runtime);
        messages.MarkupLineInterpolated($"Runtime: {choice}");
        return choice;
    }

    /// <summary>The model of --model (and --adapter), run by TorchSharp.</summary>
    public static TaskModel LoadModel(string model, string? adapter, int? stride)
    {
        if (adapter is null) return TaskModel.Load(model, stride);
        RequireDirectory(adapter, "--adapter");
        return TaskModel.LoadAdapter(model, adapter, stride);
    }

    /// <summary>A model or run directory that exists; a file in its place is named as such.</summary>
    public static void RequireDirectory(string path, string option)
    {
        if (File.Exists(path)) throw new SharpTuneException($"{path}: {option} is a file; give a model or run directory.");
        if (!Directory.Exists(path)) throw new SharpTuneException($"{path}: {option} directory not found.");
    }
}
