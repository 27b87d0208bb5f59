using System.ComponentModel;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Data;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

internal sealed class PredictSettings : CommandSettings
{
    [CommandOption("--model <RUN_DIR>", true)]
    [Description("A run directory written by train (or a Hugging Face BertForSequenceClassification directory).")]
    public string Model { get; set; } = "";

    [CommandOption("--adapter <DIR>")]
    [Description("A PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors, e.g. a lora run's adapter/) to put on --model, then its base model.")]
    public string? Adapter { get; set; }

    [CommandOption("--data <FILE>")]
    [Description("Texts to label: .csv, .tsv or .jsonl; a label column is not needed (and is ignored). Needs --output.")]
    public string? Data { get; set; }

    [CommandOption("--output <FILE>")]
    [Description("CSV written for --data: the text column(s), label (predicted) and p_<label> per class.")]
    public string? Output { get; set; }

    [CommandOption("--text <TEXT>")]
    [Description("One text to label (instead of --data).")]
    public string? Text { get; set; }

    [CommandOption("--text-pair <TEXT>")]
    [Description("The second text of a pair, with --text.")]
    public string? TextPair { get; set; }

    [CommandOption("--text-column <COLUMN>")]
    [Description("Column of the text in --data. Default: text, sentence or sentence1.")]
    public string? TextColumn { get; set; }

    [CommandOption("--text-pair-column <COLUMN>")]
    [Description("Column of the second text in --data. Default: text_pair or sentence2 when present.")]
    public string? TextPairColumn { get; set; }

    [CommandOption("--skip-bad-rows")]
    [Description("Skip unreadable rows of --data (reported) instead of stopping.")]
    public bool SkipBadRows { get; set; }

    [CommandOption("--format <FORMAT>")]
    [Description("table | json.")]
    [DefaultValue("table")]
    public string Format { get; set; } = "table";

    [CommandOption("--batch-size <N>")]
    [DefaultValue(32)]
    public int BatchSize { get; set; } = 32;

    [CommandOption("--precision <PRECISION>")]
    [Description("fp32 | bf16 (mixed precision: matrix multiplications in bfloat16, weights fp32).")]
    [DefaultValue("fp32")]
    public string Precision { get; set; } = "fp32";

    public override ValidationResult Validate()
    {
        if ((Data is null) == (Text is null)) return ValidationResult.Error("Give either --data FILE --output FILE.csv or --text TEXT.");
        if (Data is not null && Output is null) return ValidationResult.Error("--data needs --output FILE.csv for the predictions.");
        if (TextPair is not null && Text is null) return ValidationResult.Error("--text-pair goes with --text.");
        if (BatchSize <= 0) return ValidationResult.Error($"--batch-size must be positive, got {BatchSize}.");
        return ValidationResult.Success();
    }
}

/// <summary>sharptune predict: the label and per-class probabilities of texts.</summary>
internal sealed class PredictCommand(IAnsiConsole console) : Command<PredictSettings>
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public override int Execute(CommandContext context, PredictSettings settings, CancellationToken cancellationToken)
    {
        bool json = CommandSupport.IsJson(settings.Format);
        CommandSupport.RequireDirectory(settings.Model, "--model");
        if (settings.Data is not null) CommandSupport.RequireFile(settings.Data, "--data");

        using var classifier = CommandSupport.LoadClassifier(settings.Model, settings.Adapter);
        if (settings.Text is not null)
        {
            Prediction prediction = classifier.Predict([settings.Text], [settings.TextPair], settings.BatchSize, precision: Models.Precisions.Parse(settings.Precision))[0];
            if (json) CommandSupport.WriteJson(console, new JsonObject { ["label"] = prediction.Label, ["probabilities"] = Probabilities(prediction) });
            else WritePrediction(prediction);
            return 0;
        }

        var options = new DataOptions
        {
            TextColumn = settings.TextColumn, TextPairColumn = settings.TextPairColumn, SkipBadRows = settings.SkipBadRows, ReadLabels = false,
        };
        LoadedData data = TextDataset.Load(settings.Data!, options);
        if (!json) CommandSupport.ReportSkipped(data, console);
        if (data.Examples.Count == 0) throw new SharpTuneException($"{settings.Data}: no texts.");
        var predictions = classifier.Predict(data.Examples.Select(e => e.Text).ToList(), data.Examples.Select(e => e.TextPair).ToList(), settings.BatchSize, precision: Models.Precisions.Parse(settings.Precision));
        WriteCsv(settings.Output!, data, classifier.Labels.Names, predictions);

        if (json)
            CommandSupport.WriteJson(console, new JsonObject
            {
                ["output"] = settings.Output, ["predictions"] = predictions.Count, ["skipped_rows"] = data.SkippedRows,
                ["label_counts"] = LabelCounts(predictions),
            });
        else
        {
            console.MarkupLineInterpolated($"Wrote {predictions.Count} predictions to {settings.Output}.");
            var counts = new Table().Border(TableBorder.Rounded).AddColumn("predicted label").AddColumn(new TableColumn("texts").RightAligned());
            foreach (var (label, count) in LabelCounts(predictions)) counts.AddRow(Markup.Escape(label), count!.ToString());
            console.Write(counts);
        }
        return 0;
    }

    private static JsonObject LabelCounts(IReadOnlyList<Prediction> predictions)
    {
        var counts = new JsonObject();
        foreach (var group in predictions.GroupBy(p => p.Label).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal))
            counts[group.Key] = group.Count();
        return counts;
    }

    private static JsonObject Probabilities(Prediction prediction)
    {
        var result = new JsonObject();
        foreach (var (label, p) in prediction.Probabilities) result[label] = CommandSupport.Number(p);
        return result;
    }

    private void WritePrediction(Prediction prediction)
    {
        console.MarkupLineInterpolated($"label: [bold]{prediction.Label}[/]");
        var table = new Table().Border(TableBorder.Rounded).AddColumn("label").AddColumn(new TableColumn("probability").RightAligned());
        foreach (var (label, p) in prediction.Probabilities.OrderByDescending(kv => kv.Value))
            table.AddRow(Markup.Escape(label), p.ToString("F4", Invariant));
        console.Write(table);
    }

    /// <summary>
    /// Writes the predictions as RFC 4180 CSV (fields with commas, quotes or line breaks quoted, quotes doubled) into
    /// a temporary file beside <paramref name="path"/>, then moves it into place: a reader never sees half a file.
    /// </summary>
    private static void WriteCsv(string path, LoadedData data, IReadOnlyList<string> labels, IReadOnlyList<Prediction> predictions)
    {
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
        string temp = path + ".tmp-" + Environment.ProcessId.ToString(Invariant);
        try
        {
            using (var writer = new StreamWriter(temp, append: false, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)))
            {
                var header = new List<string> { data.Columns.Text };
                if (data.Columns.TextPair is not null) header.Add(data.Columns.TextPair);
                header.Add("label");
                header.AddRange(labels.Select(l => "p_" + l));
                WriteRow(writer, header);
                for (int i = 0; i < predictions.Count; i++)
                {
                    var row = new List<string> { data.Examples[i].Text };
                    if (data.Columns.TextPair is not null) row.Add(data.Examples[i].TextPair ?? "");
                    row.Add(predictions[i].Label);
                    row.AddRange(labels.Select(l => predictions[i].Probabilities[l].ToString("R", Invariant)));
                    WriteRow(writer, row);
                }
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static void WriteRow(TextWriter writer, IEnumerable<string> fields)
    {
        writer.Write(string.Join(",", fields.Select(Quote)));
        writer.Write('\n');
    }

    private static string Quote(string field) =>
        field.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + field.Replace("\"", "\"\"") + "\"" : field;
}
