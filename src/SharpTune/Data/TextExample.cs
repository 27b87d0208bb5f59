using SharpTune.Training;

namespace SharpTune.Data;

/// <summary>File formats <see cref="TextDataset.Load"/> reads.</summary>
public enum DataFormat
{
    /// <summary>Comma-separated values (RFC 4180), header row first.</summary>
    Csv,
    /// <summary>Tab-separated values, header row first, quoted like CSV.</summary>
    Tsv,
    /// <summary>JSON lines: one JSON object per line.</summary>
    Jsonl,
    /// <summary>Plain text: one text per line (its line number is the row's line), no header, no labels; an empty line is an empty text.</summary>
    Txt,
}

/// <summary>
/// One labelled input. Single-label: <see cref="Labels"/> holds one name. Multi-label: zero or more
/// names. Regression: <see cref="Labels"/> is empty and <see cref="Target"/> holds the value.
/// </summary>
/// <param name="Text">The text (may be empty).</param>
/// <param name="TextPair">The second text of a sentence pair, or null.</param>
/// <param name="Labels">Label names (see above).</param>
/// <param name="Target">The regression target, or null for classification.</param>
public sealed record TextExample(string Text, string? TextPair, IReadOnlyList<string> Labels, float? Target)
{
    /// <summary>1-based line of the file where this example's record starts; 0 when built in memory.</summary>
    public int Line { get; init; }

    /// <summary>The single label of a single-label example.</summary>
    /// <exception cref="InvalidOperationException">The example does not have exactly one label.</exception>
    public string Label => Labels.Count == 1
        ? Labels[0]
        : throw new InvalidOperationException($"Example on line {Line} has {Labels.Count} labels, not one.");

    /// <summary>A single-label example.</summary>
    public static TextExample Single(string text, string label, string? textPair = null) => new(text, textPair, [label], null);

    /// <summary>A multi-label example.</summary>
    public static TextExample Multi(string text, IEnumerable<string> labels, string? textPair = null) => new(text, textPair, labels.ToArray(), null);

    /// <summary>A regression example.</summary>
    public static TextExample Regression(string text, float target, string? textPair = null) => new(text, textPair, [], target);
}

/// <summary>The columns (CSV/TSV header names or JSON keys) a file was read with.</summary>
/// <param name="Text">Column of the text.</param>
/// <param name="TextPair">Column of the second text, or null when the data has none.</param>
/// <param name="Label">Column of the label(s) or regression target; null when labels were not read (<see cref="DataOptions.ReadLabels"/>).</param>
public sealed record DataColumns(string Text, string? TextPair, string? Label);

/// <summary>
/// The examples read from one file, with the rows skipped under <see cref="DataOptions.SkipBadRows"/>.
/// </summary>
/// <param name="Examples">The examples in file order.</param>
/// <param name="SkippedRows">How many rows were skipped (0 unless <see cref="DataOptions.SkipBadRows"/>).</param>
/// <param name="SkipReasons">Why, for the first <see cref="TextDataset.MaxSkipReasons"/> skipped rows ("file:line: reason").</param>
/// <param name="Path">The file read.</param>
/// <param name="Task">The task the labels were read for (given or inferred).</param>
/// <param name="Columns">The columns used.</param>
public sealed record LoadedData(
    IReadOnlyList<TextExample> Examples, int SkippedRows, IReadOnlyList<string> SkipReasons, string Path, TaskType Task, DataColumns Columns);
