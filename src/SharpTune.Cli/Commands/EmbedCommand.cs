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
    [Description("The text to embed (required).")]
    public string? Text { get; init; }

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
    [Description("fp32 | bf16 (mixed precision: matrix multiplications in bfloat16, weights fp32).")]
    [DefaultValue("fp32")]
    public string Precision { get; init; } = "fp32";

    /// <summary>torch or onnx.</summary>
    [CommandOption("--runtime <RUNTIME>")]
    [Description("torch (TorchSharp) | onnx (ONNX Runtime on the encoder's export, made once and kept in MODEL/onnx/; fp32 only).")]
    [DefaultValue("torch")]
    public string Runtime { get; init; } = "torch";

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
        if (Text is null) return ValidationResult.Error("--text is required.");
        if (Pooling.ToLowerInvariant() is not ("cls" or "mean" or "none"))
            return ValidationResult.Error($"--pooling: '{Pooling}' is not one of cls, mean, none.");
        if (Runtime is not ("torch" or "onnx")) return ValidationResult.Error($"--runtime '{Runtime}' is not one of torch, onnx.");
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
        using var encoder = PretrainedEncoder.Load(settings.ModelDir);
        var embedder = new Embedder(encoder, new EmbedderOptions
        {
            Pooling = settings.ParsedPooling,
            Normalize = settings.Normalize,
            MaxLength = settings.MaxLength,
            Precision = Models.Precisions.Parse(settings.Precision),
        });
        using var onnx = settings.Runtime == "onnx"
            ? new Export.OnnxRuntimeModel(Export.OnnxRuntimeModel.CachedExport(encoder.Model, encoder.Directory.Path)) : null;
        embedder.OnnxRuntime = onnx;
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
