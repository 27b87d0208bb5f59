using System.ComponentModel;
using System.Globalization;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Export;
using SharpTune.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

internal sealed class EvaluateSettings : InferenceSettings
{
    [CommandOption("--data <FILE>", true)]
    [Description("Labelled data: .csv, .tsv or .jsonl; for a token-classification model, tagged sentences (CoNLL or JSON lines with tokens and tags).")]
    public string Data { get; set; } = "";
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

        RuntimeRequest runtime = settings.RuntimeRequest(); // its flags checked before any work
        using TaskModel model = CommandSupport.LoadModel(settings.Model, settings.Adapter, settings.Stride);
        RuntimeChoice choice;
        IAnsiConsole messages = json ? CommandSupport.Silent() : console;
        var precision = Models.Precisions.Parse(settings.Precision);
        (EvaluationOutput Output, int Count, string What, int Skipped, IReadOnlyList<string> Reasons) result;
        if (model is TokenTagger tagger)
        {
            LoadedTokenData data = CommandSupport.LoadTagged(settings.Data, settings.TokenDataOptions(), messages);
            TokenDataset.CheckTags(data.Sentences, tagger.Labels, settings.Data);
            choice = CommandSupport.UseRuntime(model, settings, runtime with { Tokens = RuntimeRequest.EstimateTokens(data.Sentences.Select(s => string.Join(' ', s.Tokens)), tagger.MaxLength) }, messages);
            result = (tagger.Evaluate(data.Sentences, settings.BatchSize, device: settings.Device, precision: precision), data.Sentences.Count, "sentences", data.SkippedSentences, data.SkipReasons);
        }
        else
        {
            var classifier = (TextClassifier)model;
            LoadedData data = CommandSupport.Load(settings.Data, settings.DataOptions(classifier.Task), messages);
            if (classifier.Task != TaskType.Regression) data = classifier.Labels.Check(data);
            choice = CommandSupport.UseRuntime(model, settings, runtime with { Tokens = RuntimeRequest.EstimateTokens(data.Examples.Select(e => e.Text + e.TextPair), classifier.MaxLength) }, messages);
            result = (classifier.Evaluate(data.Examples, settings.BatchSize, device: settings.Device, precision: precision), data.Examples.Count, "examples", data.SkippedRows, data.SkipReasons);
        }

        if (json) CommandSupport.WriteJson(console, Json(settings, result.Count, result.Skipped, result.Reasons, result.Output, choice));
        else WriteTables(settings, $"{result.Count} {result.What}", result.Output);
        return 0;
    }

    // Per-class (per-tag) scores and the confusion matrix where the task has them.
    private static (IReadOnlyList<ClassScore>? PerClass, int[][]? Confusion) Breakdown(EvaluationMetrics? details) => details switch
    {
        ClassificationMetrics c => (c.PerClass, c.ConfusionMatrix),
        MultiLabelMetrics m => (m.PerClass, null),
        TokenMetrics t => (t.PerTag, t.ConfusionMatrix),
        _ => (null, null),
    };

    private static JsonObject Json(EvaluateSettings settings, int count, int skipped, IReadOnlyList<string> reasons, EvaluationOutput output, RuntimeChoice choice)
    {
        var result = new JsonObject
        {
            ["model"] = settings.Model,
            ["data"] = settings.Data,
            ["examples"] = count,
            ["skipped_rows"] = skipped,
            ["skip_reasons"] = new JsonArray(reasons.Select(r => (JsonNode)JsonValue.Create(r)!).ToArray()),
        };
        result["runtime"] = choice.ToString(); // what ran the model, and why
        foreach (var (name, value) in output.Metrics.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal)))
            result[name] = CommandSupport.Number(value);
        foreach (var (name, node) in EvaluationJson.Details(output.Details)) result[name] = node?.DeepClone();
        if (output.Details is TokenMetrics { Entities: { } entities } token)
        {
            result["scheme"] = token.Scheme?.ToString();
            result["entities"] = new JsonArray(entities.PerType.Select(e => (JsonNode)new JsonObject
            {
                ["type"] = e.Type, ["precision"] = e.Precision, ["recall"] = e.Recall, ["f1"] = e.F1, ["support"] = e.Support,
            }).ToArray());
        }
        return result;
    }

    private void WriteTables(EvaluateSettings settings, string count, EvaluationOutput output)
    {
        console.MarkupLineInterpolated($"Model {settings.Model} on {settings.Data}: {count}.");
        var metrics = new Table().Border(TableBorder.Rounded).AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        foreach (var (name, value) in output.Metrics.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal)))
            metrics.AddRow(Markup.Escape(name), value.ToString("F4", Invariant));
        console.Write(metrics);

        var (perClass, confusionMatrix) = Breakdown(output.Details);
        if (output.Details is TokenMetrics { Entities: { } entities } token)
        {
            var table = new Table().Border(TableBorder.Rounded).Title($"Entities ({token.Scheme}, seqeval default mode)")
                .AddColumn("type").AddColumn(new TableColumn("precision").RightAligned()).AddColumn(new TableColumn("recall").RightAligned())
                .AddColumn(new TableColumn("F1").RightAligned()).AddColumn(new TableColumn("support").RightAligned());
            foreach (EntityScore e in entities.PerType)
                table.AddRow(Markup.Escape(e.Type), e.Precision.ToString("F4", Invariant), e.Recall.ToString("F4", Invariant),
                    e.F1.ToString("F4", Invariant), e.Support.ToString(Invariant));
            console.Write(table);
        }
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

        if (confusionMatrix is not null)
        {
            var confusion = new Table().Border(TableBorder.Rounded).Title("Confusion matrix (rows: gold, columns: predicted)").AddColumn("gold \\ predicted");
            foreach (ClassScore c in perClass!) confusion.AddColumn(new TableColumn(Markup.Escape(c.Label)).RightAligned());
            for (int gold = 0; gold < perClass.Count; gold++)
                confusion.AddRow([Markup.Escape(perClass[gold].Label),
                    .. confusionMatrix[gold].Select((count, predicted) => predicted == gold ? $"[green]{count}[/]" : count.ToString(Invariant))]);
            console.Write(confusion);
        }
    }
}
