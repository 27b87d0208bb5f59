using System.ComponentModel;
using System.Globalization;
using System.Text;
using System.Text.Json;
using SharpTune.Inference;
using SharpTune.Models;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

/// <summary>Options of <c>sharptune embed</c>.</summary>
public sealed class EmbedSettings : ModelSettings
{
    /// <summary>The text to embed.</summary>
    [CommandOption("-t|--text <TEXT>")]
    [Description("The text to embed (or --data FILE).")]
    public string? Text { get; init; }

    /// <summary>A file of texts to embed, written to <see cref="Output"/>.</summary>
    [CommandOption("--data <FILE>")]
    [Description("Embed every text of a .csv, .tsv or .jsonl file, or every line of a .txt file (streamed, resumable), into --output.")]
    public string? Data { get; init; }

    /// <summary>The embeddings file of --data.</summary>
    [CommandOption("--output <FILE>")]
    [Description("For --data: .npy (float32 [[texts, hidden]]), .csv (line,dim_0,…), .safetensors (tensor 'embeddings') or .parquet (line, embedding list<float>). " +
        "A killed run continues when run again with the same arguments.")]
    public string? Output { get; init; }

    /// <summary>Column of the text (--data).</summary>
    [CommandOption("--text-column <COLUMN>")]
    [Description("Column of the text. Default: text, sentence or sentence1.")]
    public string? TextColumn { get; init; }

    /// <summary>Column of the second text (--data).</summary>
    [CommandOption("--text-pair-column <COLUMN>")]
    [Description("Column of the second text of a pair. Default: text_pair or sentence2 when present.")]
    public string? TextPairColumn { get; init; }

    /// <summary>Skip unreadable rows and empty texts (--data).</summary>
    [CommandOption("--skip-bad-rows")]
    [Description("Skip unreadable rows and empty texts (reported) instead of stopping at the first one; the line column of .csv/.parquet ties rows to the input.")]
    public bool SkipBadRows { get; init; }

    /// <summary>Texts per chunk (--data).</summary>
    [CommandOption("--chunk-size <N>")]
    [Description("Texts read, embedded and written at a time (progress is saved after each chunk; memory grows with it, never with the file).")]
    [DefaultValue(1024)]
    public int ChunkSize { get; init; } = 1024;

    /// <summary>Texts per forward pass.</summary>
    [CommandOption("--batch-size <N>")]
    [Description("Texts per forward pass (within a chunk, sorted by length).")]
    [DefaultValue(32)]
    public int BatchSize { get; init; } = 32;

    /// <summary>Replace an existing --output.</summary>
    [CommandOption("--overwrite")]
    [Description("Replace an existing --output, and start again rather than continue an interrupted run.")]
    public bool Overwrite { get; init; }

    /// <summary>Optional second segment (token_type_ids 1).</summary>
    [CommandOption("--text-pair <TEXT>")]
    [Description("Second text of a pair (segment B, token_type_ids 1).")]
    public string? TextPair { get; init; }

    /// <summary>cls, mean or none.</summary>
    [CommandOption("--pooling <POOLING>")]
    [Description("cls (first token's state), mean (mean of the real tokens' states) or none (every token's state).")]
    [DefaultValue("mean")]
    public string Pooling { get; init; } = "mean";

    /// <summary>Scale to unit L2 norm.</summary>
    [CommandOption("--normalize")]
    [Description("Scale the vector (each token's vector for --pooling none) to unit L2 norm.")]
    public bool Normalize { get; init; }

    /// <summary>Truncation length in tokens, as given (parsed by <see cref="MaxLength"/>, so that a bad value gets a clear message).</summary>
    [CommandOption("--max-length <N>")]
    [Description("Truncate to N tokens, [[CLS]] and [[SEP]] included. Default: the model's maximum.")]
    public string? MaxLengthText { get; init; }

    /// <summary>The truncation length, or null for the model's maximum.</summary>
    public int? MaxLength => MaxLengthText is null ? null
        : int.TryParse(MaxLengthText, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n
        : throw new SharpTuneException($"--max-length: '{MaxLengthText}' is not a whole number.");

    /// <summary>fp32 or bf16.</summary>
    [CommandOption("--precision <PRECISION>")]
    [Description(RuntimeFlags.PrecisionHelp)]
    [DefaultValue("fp32")]
    public string Precision { get; init; } = "fp32";

    /// <summary>auto, torch or onnx.</summary>
    [CommandOption("--runtime <RUNTIME>")]
    [Description(RuntimeFlags.RuntimeHelp)]
    [DefaultValue("auto")]
    public string Runtime { get; init; } = "auto";

    /// <summary>cpu, cuda or cuda:N.</summary>
    [CommandOption("--device <DEVICE>")]
    [Description(RuntimeFlags.DeviceHelp)]
    [DefaultValue("cpu")]
    public string Device { get; init; } = "cpu";

    /// <summary>json or text.</summary>
    [CommandOption("--format <FORMAT>")]
    [Description("json (machine-readable, one object) or text.")]
    [DefaultValue("text")]
    public string Format { get; init; } = "text";

    /// <summary>The parsed pooling.</summary>
    public Pooling ParsedPooling => Pooling.ToLowerInvariant() switch
    {
        "cls" => Inference.Pooling.Cls,
        "mean" => Inference.Pooling.Mean,
        "none" => Inference.Pooling.None,
        _ => throw new SharpTuneException($"--pooling: '{Pooling}' is not one of cls, mean, none."),
    };

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Text is null && Data is null) return ValidationResult.Error("--text is required (or --data FILE --output FILE for a whole file).");
        if (Text is not null && Data is not null) return ValidationResult.Error("Give either --text TEXT or --data FILE --output FILE, not both.");
        if (Data is not null && Output is null) return ValidationResult.Error("--data needs --output FILE (.npy, .csv, .safetensors or .parquet).");
        if (Data is not null && TextPair is not null) return ValidationResult.Error("--text-pair goes with --text; for --data name the column with --text-pair-column.");
        if (Data is null && (Output is not null || Overwrite)) return ValidationResult.Error("--output and --overwrite go with --data.");
        if (Output is not null && CorpusEmbedder.FormatOf(Output) is null)
            return ValidationResult.Error($"--output: unknown extension '{Path.GetExtension(Output)}'; use .npy, .csv, .safetensors or .parquet.");
        if (Output is not null && Pooling.Equals("none", StringComparison.OrdinalIgnoreCase) && !CorpusEmbedder.HoldsTokenRows(CorpusEmbedder.FormatOf(Output)!.Value))
            return ValidationResult.Error($"--pooling none gives one row per token, which a {Path.GetExtension(Output)} matrix cannot tie to its text; use --output .parquet or .csv (line and token columns), or --pooling cls|mean.");
        if (ChunkSize < 1) return ValidationResult.Error($"--chunk-size must be at least 1 (got {ChunkSize}).");
        if (BatchSize < 1) return ValidationResult.Error($"--batch-size must be at least 1 (got {BatchSize}).");
        if (Pooling.ToLowerInvariant() is not ("cls" or "mean" or "none"))
            return ValidationResult.Error($"--pooling: '{Pooling}' is not one of cls, mean, none.");
        if (Format.ToLowerInvariant() is not ("json" or "text"))
            return ValidationResult.Error($"--format: '{Format}' is not one of json, text.");
        if (MaxLengthText is not null && !int.TryParse(MaxLengthText, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            return ValidationResult.Error($"--max-length: '{MaxLengthText}' is not a whole number.");
        if (MaxLength is < 3) return ValidationResult.Error($"--max-length: {MaxLength} leaves no room for the special tokens; use 3 or more.");
        return ValidationResult.Success();
    }
}

/// <summary><c>sharptune embed</c>: prints the embedding of one text (or text pair).</summary>
internal sealed class EmbedCommand(IAnsiConsole console) : Command<EmbedSettings>
{
    public override int Execute(CommandContext context, EmbedSettings settings, CancellationToken cancellationToken)
    {
        // The job's size: the text's estimated tokens, or for --data the file's (a token per 4 bytes, checked below).
        long? tokens = settings.Data is null ? Export.RuntimeRequest.EstimateTokens([settings.Text! + settings.TextPair], settings.MaxLength ?? int.MaxValue)
            : File.Exists(settings.Data) ? new FileInfo(settings.Data).Length / 4 : null;
        var runtime = RuntimeFlags.Request(settings.Runtime, onnx: null, settings.Precision, settings.Device, tokens);
        using var encoder = PretrainedEncoder.Load(settings.ModelDir);
        var embedder = new Embedder(encoder, new EmbedderOptions
        {
            Pooling = settings.ParsedPooling,
            Normalize = settings.Normalize,
            MaxLength = settings.MaxLength,
            BatchSize = settings.BatchSize,
            Precision = runtime.Precision,
            Device = settings.Device,
        });
        if (settings.Data is not null) CheckFiles(settings);
        Export.RuntimeChoice choice = Export.RuntimeSelector.ForEncoder(encoder, runtime);
        using var onnx = choice.Session;
        embedder.OnnxRuntime = onnx;
        if (settings.Data is not null)
        {
            console.MarkupLineInterpolated($"Runtime: {choice}");
            return EmbedFile(settings, embedder, encoder);
        }
        TextEmbedding result = embedder.Embed(settings.Text!, settings.TextPair);
        // Vectors go to the raw writer: the console would wrap long lines at its width.
        TextWriter writer = console.Profile.Out.Writer;
        if (settings.Format.Equals("json", StringComparison.OrdinalIgnoreCase)) writer.WriteLine(Json(result, settings.Normalize, encoder.UnusedKeys));
        else
        {
            // A task checkpoint (XForSequenceClassification) embeds with its encoder; say that its head is left out.
            if (encoder.UnusedKeys.Count > 0)
                writer.WriteLine($"Note: {settings.ModelDir} is a task checkpoint; embedding with its encoder, its head ({encoder.UnusedKeysSummary}) is not used.");
            WriteText(writer, result, encoder, settings.Normalize);
        }
        writer.Flush();
        return 0;
    }

    // embed --data: the library's CorpusEmbedder under the console's progress bar; its errors named by flag.
    // What embed --data can check before any work (the runtime's export included).
    private static void CheckFiles(EmbedSettings settings)
    {
        CommandSupport.RequireFile(settings.Data!, "--data");
        if (File.Exists(settings.Output!) && !settings.Overwrite)
            throw new SharpTuneException($"{settings.Output}: --output exists; pass --overwrite to replace it.");
        if (settings.Format.Equals("json", StringComparison.OrdinalIgnoreCase))
            throw new SharpTuneException("--format json prints one embedding; --data writes its embeddings to --output.");
    }

    private int EmbedFile(EmbedSettings settings, Embedder embedder, PretrainedEncoder encoder)
    {
        var corpus = new CorpusEmbedder(embedder, new CorpusEmbedderOptions
        {
            Data = new Data.DataOptions { TextColumn = settings.TextColumn, TextPairColumn = settings.TextPairColumn, SkipBadRows = settings.SkipBadRows },
            ChunkSize = settings.ChunkSize,
            Overwrite = settings.Overwrite,
        });
        if (encoder.UnusedKeys.Count > 0)
            console.MarkupLineInterpolated($"Note: {settings.ModelDir} is a task checkpoint; embedding with its encoder, its head ({encoder.UnusedKeysSummary}) is not used.");
        var display = new ConsoleProgress(console);
        CorpusEmbeddingResult result;
        try
        {
            result = display.Run(() => corpus.Run(settings.Data!, settings.Output!, display));
        }
        catch (CorpusResumeException e)
        {
            string flag = ResumeFlags.GetValueOrDefault(e.Setting, e.Setting);
            throw new SharpTuneException(e.Message.Replace($"cannot resume: {e.Setting}", $"cannot resume: {e.Setting} ({flag})").Replace("set CorpusEmbedderOptions.Overwrite", "pass --overwrite"), e);
        }
        catch (SharpTuneException e) when (e.Message.Contains("CorpusEmbedderOptions.Overwrite", StringComparison.Ordinal))
        {
            throw new SharpTuneException(e.Message.Replace("set CorpusEmbedderOptions.Overwrite", "pass --overwrite"), e);
        }
        if (result.SkippedRows > 0)
        {
            console.MarkupLineInterpolated($"[yellow]skipped {result.SkippedRows} bad row(s) of {settings.Data}[/]; first reasons:");
            foreach (string reason in result.SkipReasons.Take(3)) console.MarkupLineInterpolated($"  [grey]{reason}[/]");
        }
        string resumed = result.ResumedFrom > 0 ? $" (continued after {result.ResumedFrom} texts written by an interrupted run)" : "";
        console.MarkupLineInterpolated($"Wrote {result.Rows} × {result.Dimensions} embeddings of {result.Texts} texts to {result.Output}{resumed}.");
        return 0;
    }

    // The flag behind each setting an interrupted run records.
    private static readonly Dictionary<string, string> ResumeFlags = new()
    {
        ["input"] = "--data", ["model"] = "--model", ["dimensions"] = "--model", ["format"] = "--output", ["pooling"] = "--pooling",
        ["normalize"] = "--normalize", ["max_length"] = "--max-length", ["precision"] = "--precision", ["runtime"] = "--runtime",
        ["text_column"] = "--text-column", ["text_pair_column"] = "--text-pair-column", ["skip_bad_rows"] = "--skip-bad-rows",
    };

    /// <summary>
    /// {"tokens": [ids], "pooling": "mean", "normalized": b, "embedding": [...]} or, for none, "last_hidden_state": [[...], ...];
    /// with "unused_keys": [...] (the head of a task checkpoint, not used) when there are any.
    /// </summary>
    internal static string Json(TextEmbedding result, bool normalized, IReadOnlyList<string>? unusedKeys = null)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartArray("tokens");
            foreach (long id in result.InputIds) json.WriteNumberValue(id);
            json.WriteEndArray();
            json.WriteString("pooling", result.Pooling.ToString().ToLowerInvariant());
            json.WriteBoolean("normalized", normalized);
            if (result.Pooling == Pooling.None)
            {
                json.WriteStartArray("last_hidden_state");
                foreach (float[] row in result.Rows) WriteArray(json, row);
                json.WriteEndArray();
            }
            else
            {
                json.WritePropertyName("embedding");
                WriteArray(json, result.Vector);
            }
            if (unusedKeys is { Count: > 0 })
            {
                json.WriteStartArray("unused_keys");
                foreach (string key in unusedKeys) json.WriteStringValue(key);
                json.WriteEndArray();
            }
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    // Utf8JsonWriter writes floats in the shortest form that round-trips, invariant culture.
    private static void WriteArray(Utf8JsonWriter json, float[] values)
    {
        json.WriteStartArray();
        foreach (float value in values) json.WriteNumberValue(value);
        json.WriteEndArray();
    }

    private static void WriteText(TextWriter writer, TextEmbedding result, PretrainedEncoder encoder, bool normalized)
    {
        string[] tokens = encoder.Tokenizer.ConvertIdsToTokens(result.InputIds);
        writer.WriteLine($"tokens ({tokens.Length}): {string.Join(' ', tokens)}");
        writer.WriteLine($"pooling: {result.Pooling.ToString().ToLowerInvariant()}{(normalized ? ", L2-normalized" : "")}, {result.Rows[0].Length} dimensions");
        if (result.Pooling == Pooling.None)
            for (int t = 0; t < result.Rows.Length; t++) writer.WriteLine($"{tokens[t]}\t{Numbers(result.Rows[t])}");
        else writer.WriteLine(Numbers(result.Vector));
    }

    private static string Numbers(float[] values) => string.Join(' ', values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
}
