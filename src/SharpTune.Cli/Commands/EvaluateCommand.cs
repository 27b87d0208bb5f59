using System.ComponentModel;
using System.Globalization;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

internal sealed class EvaluateSettings : DataSettings
{
    [CommandOption("--model <RUN_DIR>", true)]
    [Description("A run directory written by train (or a Hugging Face BertForSequenceClassification directory).")]
    public string Model { get; set; } = "";

    [CommandOption("--adapter <DIR>")]
    [Description("A PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors, e.g. a lora run's adapter/) to put on --model, then its base model.")]
    public string? Adapter { get; set; }

    [CommandOption("--data <FILE>", true)]
    [Description("Labelled data: .csv, .tsv or .jsonl.")]
    public string Data { get; set; } = "";

    [CommandOption("--format <FORMAT>")]
    [Description("table | json (one object).")]
    [DefaultValue("table")]
    public string Format { get; set; } = "table";

    [CommandOption("--batch-size <N>")]
    [DefaultValue(32)]
    public int BatchSize { get; set; } = 32;

    [CommandOption("--precision <PRECISION>")]
    [Description("fp32 | bf16 (mixed precision: matrix multiplications in bfloat16, weights fp32).")]
    [DefaultValue("fp32")]
    public string Precision { get; set; } = "fp32";
}

/// <summary>sharptune evaluate: loss and metrics of a trained model on labelled data.</summary>
internal sealed class EvaluateCommand(IAnsiConsole console) : Command<EvaluateSettings>
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public override int Execute(CommandContext context, EvaluateSettings settings, CancellationToken cancellationToken)
    {
        bool json = CommandSupport.IsJson(settings.Format);
        if (settings.BatchSize <= 0) throw new SharpTuneException($"--batch-size must be positive, got {settings.BatchSize}.");
        CommandSupport.RequireDirectory(settings.Model, "--model");
        CommandSupport.RequireFile(settings.Data, "--data");

        using var classifier = CommandSupport.LoadClassifier(settings.Model, settings.Adapter);
        TaskType task = classifier.Task;
        LoadedData data = CommandSupport.Load(settings.Data, settings.DataOptions(task), json ? NullConsole() : console);
        if (task != TaskType.Regression) data = classifier.Labels.Check(data);
        EvaluationOutput output = classifier.Evaluate(data.Examples, settings.BatchSize, precision: Models.Precisions.Parse(settings.Precision));

        if (json) CommandSupport.WriteJson(console, Json(settings, data, output));
        else WriteTables(settings, data, output);
        return 0;
    }

    private static JsonObject Json(EvaluateSettings settings, LoadedData data, EvaluationOutput output)
    {
        var result = new JsonObject
        {
            ["model"] = settings.Model,
            ["data"] = settings.Data,
            ["examples"] = data.Examples.Count,
            ["skipped_rows"] = data.SkippedRows,
            ["skip_reasons"] = new JsonArray(data.SkipReasons.Select(r => (JsonNode)JsonValue.Create(r)!).ToArray()),
        };
        foreach (var (name, value) in output.Metrics.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal)))
            result[name] = CommandSupport.Number(value);
        IReadOnlyList<ClassScore>? perClass = output.Details switch
        {
            ClassificationMetrics c => c.PerClass,
            MultiLabelMetrics m => m.PerClass,
            _ => null,
        };
        if (perClass is not null)
            result["per_class"] = new JsonArray(perClass.Select(c => (JsonNode)new JsonObject
            {
                ["label"] = c.Label, ["precision"] = c.Precision, ["recall"] = c.Recall, ["f1"] = c.F1, ["support"] = c.Support,
            }).ToArray());
        if (output.Details is ClassificationMetrics classification)
            result["confusion_matrix"] = new JsonObject
            {
                ["labels"] = new JsonArray(classification.PerClass.Select(c => (JsonNode)JsonValue.Create(c.Label)!).ToArray()),
                ["rows_gold_columns_predicted"] = new JsonArray(classification.ConfusionMatrix
                    .Select(row => (JsonNode)new JsonArray(row.Select(v => (JsonNode)JsonValue.Create(v)).ToArray())).ToArray()),
            };
        return result;
    }

    private void WriteTables(EvaluateSettings settings, LoadedData data, EvaluationOutput output)
    {
        console.MarkupLineInterpolated($"Model {settings.Model} on {settings.Data}: {data.Examples.Count} examples.");
        var metrics = new Table().Border(TableBorder.Rounded).AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        foreach (var (name, value) in output.Metrics.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal)))
            metrics.AddRow(Markup.Escape(name), value.ToString("F4", Invariant));
        console.Write(metrics);

        IReadOnlyList<ClassScore>? perClass = output.Details switch
        {
            ClassificationMetrics c => c.PerClass,
            MultiLabelMetrics m => m.PerClass,
            _ => null,
        };
        if (perClass is not null)
        {
            var table = new Table().Border(TableBorder.Rounded).Title("Per class")
                .AddColumn("label").AddColumn(new TableColumn("precision").RightAligned()).AddColumn(new TableColumn("recall").RightAligned())
                .AddColumn(new TableColumn("F1").RightAligned()).AddColumn(new TableColumn("support").RightAligned());
            foreach (ClassScore c in perClass)
                table.AddRow(Markup.Escape(c.Label), c.Precision.ToString("F4", Invariant), c.Recall.ToString("F4", Invariant),
                    c.F1.ToString("F4", Invariant), c.Support.ToString(Invariant));
            console.Write(table);
        }

        if (output.Details is ClassificationMetrics classification)
        {
            var confusion = new Table().Border(TableBorder.Rounded).Title("Confusion matrix (rows: gold, columns: predicted)").AddColumn("gold \\ predicted");
            foreach (ClassScore c in classification.PerClass) confusion.AddColumn(new TableColumn(Markup.Escape(c.Label)).RightAligned());
            for (int gold = 0; gold < classification.PerClass.Count; gold++)
                confusion.AddRow([Markup.Escape(classification.PerClass[gold].Label),
                    .. classification.ConfusionMatrix[gold].Select((count, predicted) => predicted == gold ? $"[green]{count}[/]" : count.ToString(Invariant))]);
            console.Write(confusion);
        }
    }

    // With --format json the output is the JSON object alone (skipped rows are listed in it).
    private static IAnsiConsole NullConsole() => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(TextWriter.Null),
    });
}
