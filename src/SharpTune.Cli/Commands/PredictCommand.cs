using System.ComponentModel;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Export;
using SharpTune.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

internal sealed class PredictSettings : InferenceSettings
{
    [CommandOption("--data <FILE>")]
    [Description("Texts to label: .csv, .tsv or .jsonl (a label column is not needed and is ignored), or .txt with one text per line. For a token-classification model: " +
        "sentences to tag, CoNLL (one token per line, a blank line between sentences; other columns are ignored) or JSON lines with tokens. Needs --output.")]
    public string? Data { get; set; }

    [CommandOption("--output <FILE>")]
    [Description("Written for --data: CSV with the text column(s), label (predicted) and p_<label> per class; for a token-classification model, " +
        "CoNLL (token<TAB>tag lines, a blank line between sentences), or JSON lines {tokens, tags} when the name ends in .jsonl.")]
    public string? Output { get; set; }

    [CommandOption("--text <TEXT>")]
    [Description("One text to label (instead of --data).")]
    public string? Text { get; set; }

    [CommandOption("--text-pair <TEXT>")]
    [Description("The second text of a pair, with --text.")]
    public string? TextPair { get; set; }

    public override ValidationResult Validate()
    {
        if ((Data is null) == (Text is null)) return ValidationResult.Error("Give either --data FILE --output FILE.csv or --text TEXT.");
        if (Data is not null && Output is null) return ValidationResult.Error("--data needs --output FILE.csv for the predictions.");
        if (TextPair is not null && Text is null) return ValidationResult.Error("--text-pair goes with --text.");
        if (BatchSize <= 0) return ValidationResult.Error($"--batch-size must be positive, got {BatchSize}.");
        if (LabelColumn is not null) return ValidationResult.Error("--label-column: predict reads no labels (evaluate scores a labelled file).");
        if (TagColumn != -1) return ValidationResult.Error("--tag-column: predict reads no tags (evaluate scores a tagged file).");
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

        RuntimeRequest runtime = settings.RuntimeRequest(); // its flags checked before any work
        using TaskModel model = CommandSupport.LoadModel(settings.Model, settings.Adapter, settings.Stride);
        IAnsiConsole messages = json ? CommandSupport.Silent() : console;
        if (model is TokenTagger tagger) return Tag(tagger, settings, runtime, json);
        var classifier = (TextClassifier)model;
        if (settings.Text is not null)
        {
            CommandSupport.UseRuntime(model, settings, runtime with { Tokens = RuntimeRequest.EstimateTokens([settings.Text + settings.TextPair], model.MaxLength) }, messages);
            Prediction prediction = classifier.Predict([settings.Text], [settings.TextPair], settings.BatchSize, device: settings.Device, precision: Models.Precisions.Parse(settings.Precision))[0];
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
        CommandSupport.UseRuntime(model, settings, runtime with { Tokens = RuntimeRequest.EstimateTokens(data.Examples.Select(e => e.Text + e.TextPair), classifier.MaxLength) }, messages);
        var predictions = classifier.Predict(data.Examples.Select(e => e.Text).ToList(), data.Examples.Select(e => e.TextPair).ToList(), settings.BatchSize, device: settings.Device, precision: Models.Precisions.Parse(settings.Precision));
        WriteCsv(settings.Output!, data, classifier.Labels.Names, predictions);

        if (json)
            CommandSupport.WriteJson(console, new JsonObject
            {
                ["output"] = settings.Output, ["predictions"] = predictions.Count, ["skipped_rows"] = data.SkippedRows,
                ["label_counts"] = Counts(predictions.Select(p => p.Label)),
            });
        else
        {
            console.MarkupLineInterpolated($"Wrote {predictions.Count} predictions to {settings.Output}.");
            var counts = new Table().Border(TableBorder.Rounded).AddColumn("predicted label").AddColumn(new TableColumn("texts").RightAligned());
            foreach (var (label, count) in Counts(predictions.Select(p => p.Label))) counts.AddRow(Markup.Escape(label), count!.ToString());
            console.Write(counts);
        }
        return 0;
    }

    /// <summary>A token-classification model: --text gives words with tags and offsets plus entities; --data writes CoNLL or JSON lines.</summary>
    private int Tag(TokenTagger tagger, PredictSettings settings, RuntimeRequest runtime, bool json)
    {
        var precision = Models.Precisions.Parse(settings.Precision);
        IAnsiConsole messages = json ? CommandSupport.Silent() : console;
        if (settings.TextPair is not null) throw new SharpTuneException("--text-pair: a token-classification model tags one text.");
        if (settings.Text is not null)
        {
            CommandSupport.UseRuntime(tagger, settings, runtime with { Tokens = RuntimeRequest.EstimateTokens([settings.Text], tagger.MaxLength) }, messages);
            TaggedText tagged = tagger.PredictText(settings.Text, device: settings.Device, precision: precision);
            if (json)
                CommandSupport.WriteJson(console, new JsonObject
                {
                    ["text"] = tagged.Text,
                    ["words"] = new JsonArray(tagged.Words.Select(w => (JsonNode)new JsonObject
                    {
                        ["word"] = w.Word, ["tag"] = w.Tag, ["probability"] = CommandSupport.Number(w.Probability), ["start"] = w.Start, ["end"] = w.End,
                    }).ToArray()),
                    ["entities"] = new JsonArray(tagged.Entities.Select(e => (JsonNode)new JsonObject
                    {
                        ["type"] = e.Type, ["text"] = e.Text, ["start"] = e.Start, ["end"] = e.End, ["first_word"] = e.FirstWord, ["last_word"] = e.LastWord,
                    }).ToArray()),
                });
            else
            {
                var table = new Table().Border(TableBorder.Rounded).AddColumn("word").AddColumn("tag").AddColumn(new TableColumn("probability").RightAligned())
                    .AddColumn(new TableColumn("characters").RightAligned());
                foreach (TaggedWord w in tagged.Words)
                    table.AddRow(Markup.Escape(w.Word), Markup.Escape(w.Tag), w.Probability.ToString("F4", Invariant), $"{w.Start}–{w.End}");
                console.Write(table);
                foreach (EntitySpan e in tagged.Entities)
                    console.MarkupLineInterpolated($"entity [bold]{e.Type}[/]: {e.Text} (characters {e.Start}–{e.End})");
            }
            return 0;
        }

        LoadedTokenData data = CommandSupport.LoadTagged(settings.Data!, new TokenDataOptions { RequireTags = false, SkipBadRows = settings.SkipBadRows },
            messages);
        var sentences = data.Sentences.Select(s => s.Tokens).ToList();
        CommandSupport.UseRuntime(tagger, settings, runtime with { Tokens = RuntimeRequest.EstimateTokens(sentences.Select(s => string.Join(' ', s)), tagger.MaxLength) }, messages);
        var predictions = tagger.Predict(sentences, settings.BatchSize, device: settings.Device, precision: precision);
        WriteTagged(settings.Output!, predictions);
        JsonObject counts = Counts(predictions.SelectMany(s => s).Select(w => w.Tag));
        if (json)
            CommandSupport.WriteJson(console, new JsonObject
            {
                ["output"] = settings.Output, ["sentences"] = predictions.Count, ["words"] = predictions.Sum(s => s.Count),
                ["skipped_sentences"] = data.SkippedSentences, ["tag_counts"] = counts,
            });
        else
        {
            console.MarkupLineInterpolated($"Wrote the tags of {predictions.Sum(s => s.Count)} words in {predictions.Count} sentences to {settings.Output}.");
            var table = new Table().Border(TableBorder.Rounded).AddColumn("predicted tag").AddColumn(new TableColumn("words").RightAligned());
            foreach (var (tag, count) in counts) table.AddRow(Markup.Escape(tag), count!.ToString());
            console.Write(table);
        }
        return 0;
    }

    /// <summary>Writes word-level tags as CoNLL (or JSON lines for .jsonl) through a temporary file moved into place.</summary>
    private static void WriteTagged(string path, IReadOnlyList<IReadOnlyList<TaggedWord>> sentences)
    {
        bool jsonLines = Path.GetExtension(path).Equals(".jsonl", StringComparison.OrdinalIgnoreCase);
        AtomicFile.WriteText(path, writer =>
        {
            foreach (var sentence in sentences)
            {
                if (jsonLines)
                {
                    var line = new JsonObject
                    {
                        ["tokens"] = new JsonArray(sentence.Select(w => (JsonNode)JsonValue.Create(w.Word)!).ToArray()),
                        ["tags"] = new JsonArray(sentence.Select(w => (JsonNode)JsonValue.Create(w.Tag)!).ToArray()),
                    };
                    writer.Write(line.ToJsonString());
                    writer.Write('\n');
                    continue;
                }
                foreach (TaggedWord w in sentence) writer.Write($"{w.Word}\t{w.Tag}\n");
                writer.Write('\n');
            }
        });
    }

    /// <summary>How often each predicted label (or tag) occurs, most frequent first (ties in ordinal order).</summary>
    private static JsonObject Counts(IEnumerable<string> predicted)
    {
        var counts = new JsonObject();
        foreach (var group in predicted.GroupBy(label => label).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal))
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
    private static void WriteCsv(string path, LoadedData data, IReadOnlyList<string> labels, IReadOnlyList<Prediction> predictions) =>
        AtomicFile.WriteText(path, writer =>
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
        });

    private static void WriteRow(TextWriter writer, IEnumerable<string> fields)
    {
        writer.Write(string.Join(",", fields.Select(Quote)));
        writer.Write('\n');
    }

    private static string Quote(string field) =>
        field.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + field.Replace("\"", "\"\"") + "\"" : field;
}
