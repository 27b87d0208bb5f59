using SharpTune.Training;
namespace SharpTune.Data;

/// <summary>
/// How <see cref="TextDataset.Load"/> reads a file. Every property is optional; the defaults suit
/// GLUE-style and most Hugging Face dataset exports.
/// </summary>
public sealed record DataOptions
{
    /// <summary>Column of the text. Default: the first of <c>text</c>, <c>sentence</c>, <c>sentence1</c> present.</summary>
    public string? TextColumn { get; init; }

    /// <summary>Column of the second text of a pair. Default: <c>text_pair</c> or <c>sentence2</c> when present, else none.</summary>
    public string? TextPairColumn { get; init; }

    /// <summary>Column of the label(s) or target. Default: the first of <c>label</c>, <c>labels</c> present.</summary>
    public string? LabelColumn { get; init; }

    /// <summary>
    /// Skip unreadable rows (wrong field count, unterminated quote, bad JSON, bad label) instead of
    /// throwing; <see cref="LoadedData.SkippedRows"/> counts them. A missing file or column still throws.
    /// Default: false.
    /// </summary>
    public bool SkipBadRows { get; init; }

    /// <summary>
    /// The task. Default (null): multi-label when the first JSON-lines label is an array, otherwise
    /// single-label. Regression is never inferred: ask for it. Token classification reads other files (<see cref="TokenDataset"/>).
    /// </summary>
    public TaskType? Task { get; init; }

    /// <summary>
    /// Read labels. False reads texts only (for prediction on unlabelled data): no label column is needed, any
    /// label column is ignored, every example has no labels and <see cref="DataColumns.Label"/> is null. Default: true.
    /// </summary>
    public bool ReadLabels { get; init; } = true;

    /// <summary>The file format. Default (null): from the extension (.csv, .tsv, .jsonl, .ndjson, .json, .txt).</summary>
    public DataFormat? Format { get; init; }
}
