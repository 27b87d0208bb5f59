using System.Globalization;
using System.Text;
using System.Text.Json;
using SharpTune.Training;

namespace SharpTune.Data;

/// <summary>
/// Reads labelled text from CSV, TSV or JSON-lines files (and texts alone from plain-text files) into <see cref="TextExample"/>s.
/// </summary>
/// <remarks>
/// <para>CSV/TSV: UTF-8 (with or without BOM), a header row naming the columns, RFC 4180 quoting, LF or CRLF
/// line ends; blank lines are ignored. JSON lines: one object per line; texts are strings (numbers are taken
/// as written), labels strings, numbers or arrays; blank lines are ignored. Plain text (.txt): UTF-8, one text per line
/// (LF or CRLF), kept as written, no header and no labels, so it is read only with <see cref="DataOptions.ReadLabels"/> false;
/// an empty line is an empty text, not skipped, so that every row keeps its line (embedding refuses an empty text as a bad
/// row, as it does an empty CSV cell).</para>
/// <para>Multi-label in a CSV/TSV cell (or a JSON string): label names separated by
/// <see cref="MultiLabelSeparator"/> (<c>;</c>), e.g. <c>sports;politics</c>; an empty cell means no label.
/// Labels are trimmed; texts are kept exactly as written.</para>
/// </remarks>
public static class TextDataset
{
    /// <summary>How many skip reasons <see cref="LoadedData.SkipReasons"/> keeps.</summary>
    public const int MaxSkipReasons = 10;

    /// <summary>Separates the labels of a multi-label CSV/TSV cell.</summary>
    public const char MultiLabelSeparator = ';';

    private static readonly string[] TextDefaults = ["text", "sentence", "sentence1"];

    /// <summary>The column names looked for when no text column is given.</summary>
    public static IReadOnlyList<string> TextColumnDefaults => TextDefaults;
    private static readonly string[] PairDefaults = ["text_pair", "sentence2"];
    private static readonly string[] LabelDefaults = ["label", "labels"];

    /// <summary>Reads the examples of one file.</summary>
    /// <param name="path">A .csv, .tsv or .jsonl file, a .txt file when labels are not read (or any name with <see cref="DataOptions.Format"/> set).</param>
    /// <param name="options">Columns, task, format and bad-row handling; null for the defaults.</param>
    /// <exception cref="SharpTuneException">
    /// The file is missing, not UTF-8 or has no usable header/column, or is plain text while labels are read; or a row is bad (wrong field count,
    /// unterminated quote, bad JSON, missing key, empty or non-numeric label) and
    /// <see cref="DataOptions.SkipBadRows"/> is off. The message starts with <c>file:line:</c>.
    /// </exception>
    public static LoadedData Load(string path, DataOptions? options = null)
    {
        using TextDataReader reader = Open(path, options);
        List<TextExample> examples = reader.Examples().ToList();
        return new LoadedData(examples, reader.SkippedRows, reader.SkipReasons, path, reader.Task, reader.Columns!);
    }

    /// <summary>
    /// Opens a file to read its examples one at a time (<see cref="TextDataReader.Examples"/>): the same formats, columns
    /// and errors as <see cref="Load"/>, but the file is never held whole, so memory does not grow with it.
    /// </summary>
    /// <exception cref="SharpTuneException">
    /// The file is missing or its extension unknown, or it is plain text while labels are to be read (or a column is named);
    /// reading throws as <see cref="Load"/> does.
    /// </exception>
    public static TextDataReader Open(string path, DataOptions? options = null)
    {
        options ??= new DataOptions();
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: data file not found.");
        DataFormat format = options.Format ?? FormatOf(path);
        if (format == DataFormat.Txt)
        {
            if (options.ReadLabels)
                throw new SharpTuneException(
                    $"{path}: a .txt file holds one text per line and no labels; training and evaluation need labelled data: .csv, .tsv or .jsonl with a text and a label column.");
            string? column = options.TextColumn is not null ? nameof(DataOptions.TextColumn) : options.TextPairColumn is not null ? nameof(DataOptions.TextPairColumn) : null;
            if (column is not null)
                throw new SharpTuneException($"{path}: a .txt file has no columns (one text per line); {column} does not apply to it.");
        }
        return new TextDataReader(path, options, format);
    }

    /// <summary>The format a file name implies: .csv, .tsv/.tab, .jsonl/.ndjson/.json (JSON lines), .txt (plain text, one text per line).</summary>
    /// <exception cref="SharpTuneException">The extension is none of these.</exception>
    public static DataFormat FormatOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".csv" => DataFormat.Csv,
        ".tsv" or ".tab" => DataFormat.Tsv,
        ".jsonl" or ".ndjson" or ".json" => DataFormat.Jsonl,
        ".txt" => DataFormat.Txt,
        var other => throw new SharpTuneException(
            $"{path}: unknown data file extension '{other}'; use .csv, .tsv, .jsonl or .txt (texts only), or set DataOptions.Format."),
    };

    /// <summary>The file's text: strict UTF-8, BOM dropped; invalid bytes throw naming file:line.</summary>
    internal static string ReadUtf8(string path)
    {
        using var reader = new Utf8FileReader(path);
        return reader.ReadToEnd();
    }

    internal static IEnumerable<TextExample> ReadDelimited(TextReader input, char delimiter, string path, DataOptions options, Rows rows)
    {
        var reader = new DelimitedReader(input, delimiter);
        var fields = new List<string>();
        if (!reader.Read(fields, out int headerLine, out string? headerError))
            throw new SharpTuneException($"{path}: the file is empty; expected a header row naming the columns.");
        if (headerError is not null) throw new SharpTuneException($"{path}:{headerLine}: header row: {headerError}.");
        string[] header = fields.Select(f => f.Trim()).ToArray();
        string? duplicate = header.GroupBy(h => h, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1)?.Key;
        if (duplicate is not null) throw new SharpTuneException($"{path}:{headerLine}: column '{duplicate}' appears twice in the header.");

        DataColumns columns = rows.Columns = ResolveColumns(header, options, $"{path}:{headerLine}");
        int textIndex = Array.IndexOf(header, columns.Text);
        int pairIndex = columns.TextPair is null ? -1 : Array.IndexOf(header, columns.TextPair);
        int labelIndex = columns.Label is null ? -1 : Array.IndexOf(header, columns.Label);
        TaskType task = rows.Task = options.Task ?? TaskType.SingleLabel;
        CheckTextTask(task, path);
        string separator = delimiter == '\t' ? "\\t" : ",";

        while (reader.Read(fields, out int line, out string? error))
        {
            if (error is not null) { rows.Bad(line, error); continue; }
            if (fields.Count != header.Length)
            {
                rows.Bad(line, $"expected {header.Length} fields ({string.Join(separator, header)}) but found {fields.Count}");
                continue;
            }
            TextExample example;
            try
            {
                (IReadOnlyList<string> labels, float? target) = columns.Label is null ? ([], null) : ParseLabelText(fields[labelIndex], task, columns.Label);
                example = new TextExample(fields[textIndex], pairIndex < 0 ? null : fields[pairIndex], labels, target) { Line = line };
            }
            catch (RowException e) { rows.Bad(line, e.Message); continue; }
            yield return example;
        }
    }

    internal static IEnumerable<TextExample> ReadJsonLines(TextReader input, string path, DataOptions options, Rows rows)
    {
        DataColumns? columns = null;
        TaskType? task = rows.Task = options.Task;
        if (task is not null) CheckTextTask(task, path);
        foreach (var (line, parsed, error) in JsonLines.Read(input, path))
        {
            if (parsed is not { } document) { rows.Bad(line, error!); continue; }
            TextExample example;
            using (document)
            {
                JsonElement row = document.RootElement;
                if (row.ValueKind != JsonValueKind.Object) { rows.Bad(line, $"expected a JSON object, found {row.ValueKind}"); continue; }
                columns ??= rows.Columns = ResolveColumns(row.EnumerateObject().Select(p => p.Name).ToArray(), options, $"{path}:{line}");
                task ??= rows.Task = columns.Label is not null && row.TryGetProperty(columns.Label, out JsonElement first) && first.ValueKind == JsonValueKind.Array
                    ? TaskType.MultiLabel : TaskType.SingleLabel;
                try
                {
                    string exampleText = JsonText(row, columns.Text);
                    string? pair = columns.TextPair is null ? null : JsonText(row, columns.TextPair);
                    (IReadOnlyList<string> labels, float? target) = columns.Label is null ? ([], null) : JsonLabel(Property(row, columns.Label), task, columns.Label);
                    example = new TextExample(exampleText, pair, labels, target) { Line = line };
                }
                catch (RowException e) { rows.Bad(line, e.Message); continue; }
            }
            yield return example;
        }
        if (columns is null)
            throw new SharpTuneException($"{path}: no JSON object found{(rows.Skipped > 0 ? $" ({rows.Skipped} bad lines skipped)" : "")}.");
    }

    // One text per line, as written; an empty line is an empty text (the line is the row's identity, so it is not skipped).
    internal static IEnumerable<TextExample> ReadTextLines(TextReader input, string path, DataOptions options, Rows rows)
    {
        rows.Columns = new DataColumns("text", null, null);
        TaskType task = rows.Task = options.Task ?? TaskType.SingleLabel;
        CheckTextTask(task, path);
        foreach (var (line, text) in TextLines.Of(input)) yield return new TextExample(text, null, [], null) { Line = line };
    }

    private static void CheckTextTask(TaskType task, string path)
    {
        if (task.PerToken)
            throw new SharpTuneException($"{path}: DataOptions.Task is {task.Name}; tagged sentences are read by TokenDataset.Load (CoNLL or JSON lines with tokens and tags).");
    }

    private static DataColumns ResolveColumns(IReadOnlyCollection<string> available, DataOptions options, string where)
    {
        string list = string.Join(", ", available.Select(c => $"'{c}'"));
        string Find(string? explicitName, string option, string[] defaults, string what)
        {
            if (explicitName is not null)
                return available.Contains(explicitName)
                    ? explicitName
                    : throw new SharpTuneException($"{where}: column '{explicitName}' ({option}) not found; columns are {list}.");
            return defaults.FirstOrDefault(available.Contains)
                ?? throw new SharpTuneException(
                    $"{where}: no {what} column: expected one of {string.Join(", ", defaults.Select(d => $"'{d}'"))} (or set {option}); columns are {list}.");
        }
        string text = Find(options.TextColumn, nameof(DataOptions.TextColumn), TextDefaults, "text");
        string? label = options.ReadLabels ? Find(options.LabelColumn, nameof(DataOptions.LabelColumn), LabelDefaults, "label") : null;
        string? pair = options.TextPairColumn is not null
            ? Find(options.TextPairColumn, nameof(DataOptions.TextPairColumn), PairDefaults, "text-pair")
            : PairDefaults.FirstOrDefault(c => available.Contains(c) && c != text && c != label);
        return new DataColumns(text, pair, label);
    }

    private static (IReadOnlyList<string> Labels, float? Target) ParseLabelText(string cell, TaskType task, string column)
    {
        if (task == TaskType.SingleLabel)
        {
            string label = cell.Trim();
            return label.Length > 0 ? ([label], null) : throw new RowException($"column '{column}': empty label");
        }
        if (task == TaskType.MultiLabel)
            return (cell.Split(MultiLabelSeparator, StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Distinct(StringComparer.Ordinal).ToArray(), null);
        return float.TryParse(cell.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out float value) && float.IsFinite(value)
            ? ([], value)
            : throw new RowException($"column '{column}': '{cell}' is not a number (regression target)");
    }

    private static (IReadOnlyList<string> Labels, float? Target) JsonLabel(JsonElement value, TaskType task, string column)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                return ParseLabelText(value.GetString()!, task, column);
            case JsonValueKind.Number when task == TaskType.Regression:
                float target = (float)value.GetDouble();
                return float.IsFinite(target) ? ([], target) : throw new RowException($"key '{column}': {value.GetRawText()} does not fit a float");
            case JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False when task != TaskType.Regression:
                return ParseLabelText(value.GetRawText(), task, column);
            case JsonValueKind.Array when task == TaskType.MultiLabel:
                var labels = new List<string>();
                foreach (JsonElement item in value.EnumerateArray())
                {
                    string name = item.ValueKind switch
                    {
                        JsonValueKind.String => item.GetString()!.Trim(),
                        JsonValueKind.Number => item.GetRawText(),
                        _ => throw new RowException($"key '{column}': list items must be strings or numbers, found {item.ValueKind}"),
                    };
                    if (name.Length == 0) throw new RowException($"key '{column}': empty label in the list");
                    if (!labels.Contains(name)) labels.Add(name);
                }
                return (labels, null);
            case JsonValueKind.Array:
                throw new RowException($"key '{column}' is a list, but the task is {task}; lists need the multi task");
            default:
                throw new RowException($"key '{column}': expected a {(task == TaskType.Regression ? "number" : "string")}, found {value.ValueKind}");
        }
    }

    private static string JsonText(JsonElement row, string key)
    {
        JsonElement value = Property(row, key);
        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString()!,
            JsonValueKind.Number => value.GetRawText(),
            _ => throw new RowException($"key '{key}': expected a string, found {value.ValueKind}"),
        };
    }

    private static JsonElement Property(JsonElement row, string key) =>
        row.TryGetProperty(key, out JsonElement value) ? value : throw new RowException($"missing key '{key}'");

    /// <summary>A bad row: skipped or turned into a <see cref="SharpTuneException"/> with file and line.</summary>
    private sealed class RowException(string message) : Exception(message);

    /// <summary>What reading has found so far: the columns and task once known, and the bad rows (thrown, or counted and skipped).</summary>
    internal sealed class Rows(string path, bool skipBadRows)
    {
        private readonly List<string> _reasons = [];

        public int Skipped { get; private set; }
        public IReadOnlyList<string> Reasons => _reasons;
        public DataColumns? Columns { get; set; }
        public TaskType? Task { get; set; }

        public void Bad(int line, string reason)
        {
            string message = $"{path}:{line}: {reason.TrimEnd('.')}.";
            if (!skipBadRows) throw new SharpTuneException(message);
            Skipped++;
            if (_reasons.Count < MaxSkipReasons) _reasons.Add(message);
        }
    }
}

/// <summary>
/// The examples of one file, read one at a time (from <see cref="TextDataset.Open"/>): memory stays bounded whatever the
/// file's size. <see cref="Columns"/> and <see cref="Task"/> are known once the header (CSV/TSV) or the first object (JSON
/// lines) has been read.
/// </summary>
public sealed class TextDataReader : IDisposable
{
    private readonly Utf8FileReader input;
    private readonly TextDataset.Rows rows;
    private readonly IEnumerable<TextExample> examples;
    private bool enumerated;

    internal TextDataReader(string path, DataOptions options, DataFormat format)
    {
        Path = path;
        input = new Utf8FileReader(path);
        rows = new TextDataset.Rows(path, options.SkipBadRows);
        Format = format;
        examples = format switch
        {
            DataFormat.Jsonl => TextDataset.ReadJsonLines(input, path, options, rows),
            DataFormat.Txt => TextDataset.ReadTextLines(input, path, options, rows),
            _ => TextDataset.ReadDelimited(input, format == DataFormat.Tsv ? '\t' : ',', path, options, rows),
        };
    }

    /// <summary>The file read.</summary>
    public string Path { get; }

    /// <summary>The file's format.</summary>
    public DataFormat Format { get; }

    /// <summary>The columns used; null until the header or the first JSON object has been read.</summary>
    public DataColumns? Columns => rows.Columns;

    /// <summary>The task the labels are read for (given or inferred; single-label until known).</summary>
    public TaskType Task => rows.Task ?? TaskType.SingleLabel;

    /// <summary>Rows skipped so far under <see cref="DataOptions.SkipBadRows"/>.</summary>
    public int SkippedRows => rows.Skipped;

    /// <summary>Why, for the first <see cref="TextDataset.MaxSkipReasons"/> skipped rows ("file:line: reason").</summary>
    public IReadOnlyList<string> SkipReasons => rows.Reasons;

    /// <summary>Bytes of the file read so far, and its length: for progress.</summary>
    public (long Read, long Length) Position => (input.BytesRead, input.Length);

    /// <summary>The examples in file order, read as they are enumerated; enumerate once.</summary>
    /// <exception cref="SharpTuneException">As <see cref="TextDataset.Load"/>: a bad row (unless skipped), an unreadable header, bad UTF-8.</exception>
    public IEnumerable<TextExample> Examples()
    {
        if (enumerated) throw new InvalidOperationException("TextDataReader.Examples() reads the file once; open it again to read it again.");
        enumerated = true;
        return examples;
    }

    /// <inheritdoc/>
    public void Dispose() => input.Dispose();
}

/// <summary>The lines of a text file's content, for the line-based formats (JSON lines, CoNLL).</summary>
internal static class TextLines
{
    /// <summary>Every line (LF or CRLF ends, the CR removed) with its 1-based number; a final line without an end counts.</summary>
    public static IEnumerable<(int Line, string Text)> Of(string content) => Of(new StringReader(content));

    /// <summary>As <see cref="Of(string)"/>, read as the lines are enumerated.</summary>
    public static IEnumerable<(int Line, string Text)> Of(TextReader input)
    {
        var text = new System.Text.StringBuilder();
        for (int line = 1; input.Peek() >= 0; line++)
        {
            text.Clear();
            for (int c = input.Read(); c >= 0 && c != '\n'; c = input.Read()) text.Append((char)c);
            if (text.Length > 0 && text[^1] == '\r') text.Length--;
            yield return (line, text.ToString());
        }
    }
}

/// <summary>The one reader of JSON-lines text, for sentence and token data alike.</summary>
internal static class JsonLines
{
    /// <summary>
    /// Each non-blank line (LF or CRLF) with its 1-based number: the parsed document (the caller disposes it), or why it
    /// is not JSON. A file that is one JSON array is an error naming it.
    /// </summary>
    public static IEnumerable<(int Line, JsonDocument? Document, string? Error)> Read(string content, string path) => Read(new StringReader(content), path);

    /// <summary>As <see cref="Read(string, string)"/>, read as the lines are enumerated.</summary>
    public static IEnumerable<(int Line, JsonDocument? Document, string? Error)> Read(TextReader input, string path)
    {
        bool first = true;
        foreach (var (line, text) in TextLines.Of(input))
        {
            if (string.IsNullOrWhiteSpace(text)) continue;
            if (first && text.AsSpan().TrimStart().StartsWith("["))
                throw new SharpTuneException($"{path}:1: this is a JSON array, not JSON lines; write one object per line.");
            first = false;
            JsonDocument? document = null;
            string? error = null;
            try
            {
                StrictJson.CheckEscapes(text);
                document = JsonDocument.Parse(text);
            }
            catch (JsonException e) { error = $"bad JSON: {e.Message}"; }
            yield return (line, document, error);
        }
    }
}
