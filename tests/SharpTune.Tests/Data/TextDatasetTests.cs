using SharpTune.Training;
using SharpTune.Data;

namespace SharpTune.Tests.Data;

public sealed class TextDatasetTests : IDisposable
{
    private readonly TempFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void Csv_quoted_fields_keep_commas_doubled_quotes_and_line_breaks()
    {
        string path = _files.Write("train.csv",
            "text,label\n" +
            "\"Hello, world\",greeting\n" +
            "\"She said \"\"hi\"\"\",quote\n" +
            "\"two\nlines\",multi\n" +
            "plain text,plain\n");
        LoadedData data = TextDataset.Load(path);
        Assert.Equal(["Hello, world", "She said \"hi\"", "two\nlines", "plain text"], data.Examples.Select(e => e.Text));
        Assert.Equal(["greeting", "quote", "multi", "plain"], data.Examples.Select(e => e.Label));
        Assert.Equal([2, 3, 4, 6], data.Examples.Select(e => e.Line));
        Assert.Equal(TaskType.SingleLabel, data.Task);
        Assert.Null(data.Examples[0].TextPair);
        Assert.Null(data.Examples[0].Target);
    }

    [Fact]
    public void Csv_with_crlf_and_bom_reads_like_lf_without_bom()
    {
        string lf = _files.Write("lf.csv", "text,label\n\"a,b\",x\nc,y\n");
        string crlf = _files.Write("crlf.csv", "text,label\r\n\"a,b\",x\r\nc,y\r\n", bom: true);
        Assert.Equal(File.ReadAllBytes(crlf)[..3], new byte[] { 0xEF, 0xBB, 0xBF });
        LoadedData a = TextDataset.Load(lf), b = TextDataset.Load(crlf);
        Assert.Equal(a.Examples.Select(e => (e.Text, e.Label)), b.Examples.Select(e => (e.Text, e.Label)));
        Assert.Equal("text", b.Columns.Text);
    }

    [Fact]
    public void Csv_empty_texts_and_a_missing_final_newline_are_valid()
    {
        string path = _files.Write("t.csv", "text,label\n,a\n\"\",b\nlast,c");
        LoadedData data = TextDataset.Load(path);
        Assert.Equal(["", "", "last"], data.Examples.Select(e => e.Text));
        Assert.Equal(["a", "b", "c"], data.Examples.Select(e => e.Label));
    }

    [Fact]
    public void Tsv_reads_tabs_and_quoted_tabs()
    {
        string path = _files.Write("t.tsv", "sentence\tlabel\n\"a\tb\"\tpos\nplain, with comma\tneg\n");
        LoadedData data = TextDataset.Load(path);
        Assert.Equal(["a\tb", "plain, with comma"], data.Examples.Select(e => e.Text));
        Assert.Equal("sentence", data.Columns.Text);
    }

    [Fact]
    public void Sentence_pair_columns_are_found_by_default()
    {
        string path = _files.Write("pairs.csv", "sentence1,sentence2,label\nA man plays,Someone plays,entailment\n");
        LoadedData data = TextDataset.Load(path);
        Assert.Equal(new DataColumns("sentence1", "sentence2", "label"), data.Columns);
        Assert.Equal("Someone plays", data.Examples[0].TextPair);
    }

    [Fact]
    public void Explicit_column_names_override_the_defaults()
    {
        string path = _files.Write("t.csv", "text,body,label,category\nignored,kept,wrong,right\n");
        LoadedData data = TextDataset.Load(path, new DataOptions { TextColumn = "body", LabelColumn = "category" });
        Assert.Equal("kept", data.Examples[0].Text);
        Assert.Equal("right", data.Examples[0].Label);
    }

    [Fact]
    public void Missing_label_column_names_file_line_and_available_columns()
    {
        string path = _files.Write("t.csv", "text,target\nx,1\n");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path));
        Assert.Contains($"{path}:1:", error.Message);
        Assert.Contains("'label'", error.Message);
        Assert.Contains("'target'", error.Message);
    }

    [Fact]
    public void Missing_explicit_column_is_named()
    {
        string path = _files.Write("t.csv", "text,label\nx,1\n");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path, new DataOptions { TextPairColumn = "premise" }));
        Assert.Contains("'premise' (TextPairColumn) not found", error.Message);
    }

    [Fact]
    public void Wrong_field_count_names_the_line()
    {
        string path = _files.Write("t.csv", "text,label\nok,a\n\"multi\nline\",b\ntoo,many,fields\n");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path));
        Assert.StartsWith($"{path}:5:", error.Message);
        Assert.Contains("expected 2 fields", error.Message);
        Assert.Contains("found 3", error.Message);
    }

    [Fact]
    public void Unterminated_quote_names_the_line_where_it_opened()
    {
        string path = _files.Write("t.csv", "text,label\nok,a\n\"never closed,b\nmore,c\n");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path));
        Assert.StartsWith($"{path}:3:", error.Message);
        Assert.Contains("unterminated", error.Message);
    }

    [Fact]
    public void Text_after_a_closing_quote_is_a_bad_row()
    {
        string path = _files.Write("t.csv", "text,label\n\"quoted\"tail,a\n");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path));
        Assert.StartsWith($"{path}:2:", error.Message);
    }

    [Fact]
    public void Skip_bad_rows_counts_them_and_returns_the_reasons()
    {
        string path = _files.Write("t.csv", "text,label\ngood,a\ntoo,many,fields\n,\nalso good,b\n\"open,c\n");
        LoadedData data = TextDataset.Load(path, new DataOptions { SkipBadRows = true });
        Assert.Equal(["good", "also good"], data.Examples.Select(e => e.Text));
        Assert.Equal(3, data.SkippedRows);
        Assert.Equal(3, data.SkipReasons.Count);
        Assert.StartsWith($"{path}:3:", data.SkipReasons[0]);
        Assert.Contains("empty label", data.SkipReasons[1]);
        Assert.Contains("unterminated", data.SkipReasons[2]);
    }

    [Fact]
    public void Skip_reasons_keep_only_the_first_few()
    {
        string rows = string.Concat(Enumerable.Range(0, 25).Select(i => $"bad{i},x,y\n"));
        string path = _files.Write("t.csv", "text,label\n" + rows + "fine,a\n");
        LoadedData data = TextDataset.Load(path, new DataOptions { SkipBadRows = true });
        Assert.Single(data.Examples);
        Assert.Equal(25, data.SkippedRows);
        Assert.Equal(TextDataset.MaxSkipReasons, data.SkipReasons.Count);
    }

    [Fact]
    public void Missing_file_is_named()
    {
        string path = _files.PathOf("nope.csv");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("not found", error.Message);
    }

    [Fact]
    public void Unknown_extension_needs_a_format_option()
    {
        string path = _files.Write("data.dat", "text\tlabel\nx\ty\n");
        Assert.Contains("'.dat'", Assert.Throws<SharpTuneException>(() => TextDataset.Load(path)).Message);
        Assert.Equal("y", TextDataset.Load(path, new DataOptions { Format = DataFormat.Tsv }).Examples[0].Label);
    }

    private static readonly DataOptions TextsOnly = new() { ReadLabels = false };

    [Fact]
    public void Txt_is_one_text_per_line_as_written_numbered_by_its_line_with_crlf_bom_and_an_empty_line()
    {
        string path = _files.Write("corpus.txt", "first, with \"comma\"\r\ntext,label\r\n\r\n  spaced \t\r\nlast without newline", bom: true);
        LoadedData data = TextDataset.Load(path, TextsOnly);
        // No header, no quoting, no trimming; the empty line is an empty text on its own line, not skipped.
        Assert.Equal(["first, with \"comma\"", "text,label", "", "  spaced \t", "last without newline"], data.Examples.Select(e => e.Text));
        Assert.Equal([1, 2, 3, 4, 5], data.Examples.Select(e => e.Line));
        Assert.All(data.Examples, e => { Assert.Null(e.TextPair); Assert.Empty(e.Labels); });
        Assert.Equal(new DataColumns("text", null, null), data.Columns);
        Assert.Equal(0, data.SkippedRows);
    }

    [Fact]
    public void Txt_final_newline_ends_the_last_line_and_a_blank_line_after_it_is_one_more_empty_text()
    {
        Assert.Equal(["a", "b"], TextDataset.Load(_files.Write("a.txt", "a\nb\n"), TextsOnly).Examples.Select(e => e.Text));
        Assert.Equal(["a", "b", ""], TextDataset.Load(_files.Write("b.txt", "a\nb\n\n"), TextsOnly).Examples.Select(e => e.Text));
        Assert.Empty(TextDataset.Load(_files.Write("c.txt", ""), TextsOnly).Examples);
        using TextDataReader reader = TextDataset.Open(_files.Write("d.txt", "x\n"), TextsOnly);
        Assert.Equal(DataFormat.Txt, reader.Format);
    }

    [Fact]
    public void Txt_with_labels_is_refused_naming_the_file_and_the_formats_that_hold_labels()
    {
        string path = _files.Write("train.txt", "w1 w2\nw3\n");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path));
        Assert.StartsWith($"{path}: ", error.Message);
        Assert.Contains("no labels", error.Message);
        Assert.Contains(".csv, .tsv or .jsonl", error.Message);
        // Any name read as plain text is refused the same way.
        string other = _files.Write("train.lines", "w1\n");
        Assert.Contains("no labels", Assert.Throws<SharpTuneException>(() => TextDataset.Load(other, new DataOptions { Format = DataFormat.Txt })).Message);
    }

    [Fact]
    public void Txt_has_no_columns_to_name()
    {
        string path = _files.Write("t.txt", "w1\n");
        Assert.Contains("TextColumn does not apply",
            Assert.Throws<SharpTuneException>(() => TextDataset.Load(path, TextsOnly with { TextColumn = "text" })).Message);
        Assert.Contains("TextPairColumn does not apply",
            Assert.Throws<SharpTuneException>(() => TextDataset.Load(path, TextsOnly with { TextPairColumn = "pair" })).Message);
    }

    [Fact]
    public void Invalid_utf8_names_the_line()
    {
        byte[] bytes = [.. "text,label\nok,a\nbad "u8, 0xFF, .. ",b\n"u8];
        string path = _files.WriteBytes("t.csv", bytes);
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path));
        Assert.StartsWith($"{path}:3:", error.Message);
    }

    [Fact]
    public void Csv_multi_label_cells_split_on_semicolons()
    {
        string path = _files.Write("t.csv", "text,labels\na,sports; politics\nb,\nc,politics;politics\n");
        LoadedData data = TextDataset.Load(path, new DataOptions { Task = TaskType.MultiLabel });
        Assert.Equal("labels", data.Columns.Label);
        Assert.Equal(["sports", "politics"], data.Examples[0].Labels);
        Assert.Empty(data.Examples[1].Labels);
        Assert.Equal(["politics"], data.Examples[2].Labels);
    }

    [Fact]
    public void Regression_targets_parse_as_invariant_floats()
    {
        string path = _files.Write("t.csv", "sentence1,sentence2,label\na,b,3.8\nc,d,-1e-1\n");
        LoadedData data = TextDataset.Load(path, new DataOptions { Task = TaskType.Regression });
        Assert.Equal([3.8f, -0.1f], data.Examples.Select(e => e.Target!.Value));
        Assert.All(data.Examples, e => Assert.Empty(e.Labels));
    }

    [Fact]
    public void Non_numeric_regression_target_names_line_column_and_value()
    {
        string path = _files.Write("t.csv", "text,label\na,1.5\nb,high\n");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path, new DataOptions { Task = TaskType.Regression }));
        Assert.StartsWith($"{path}:3:", error.Message);
        Assert.Contains("'label'", error.Message);
        Assert.Contains("'high'", error.Message);
    }

    [Fact]
    public void Jsonl_reads_strings_numbers_and_infers_multi_label_from_arrays()
    {
        string path = _files.Write("t.jsonl",
            "{\"text\": \"first\", \"label\": [\"a\", 2]}\n" +
            "\n" +
            "{\"text\": \"second \\u2028 line\", \"label\": []}\r\n");
        LoadedData data = TextDataset.Load(path);
        Assert.Equal(TaskType.MultiLabel, data.Task);
        Assert.Equal(["a", "2"], data.Examples[0].Labels);
        Assert.Equal("second \u2028 line", data.Examples[1].Text);
        Assert.Equal(3, data.Examples[1].Line);
    }

    [Fact]
    public void Jsonl_numeric_labels_are_class_names_for_classification_and_values_for_regression()
    {
        string path = _files.Write("t.jsonl", "{\"sentence\": \"x\", \"label\": 1}\n{\"sentence\": \"y\", \"label\": 0.25}\n");
        Assert.Equal(["1", "0.25"], TextDataset.Load(path).Examples.Select(e => e.Label));
        Assert.Equal([1f, 0.25f], TextDataset.Load(path, new DataOptions { Task = TaskType.Regression }).Examples.Select(e => e.Target!.Value));
    }

    [Fact]
    public void Jsonl_bad_json_and_missing_keys_name_the_line()
    {
        string bad = _files.Write("bad.jsonl", "{\"text\": \"ok\", \"label\": \"a\"}\n{\"text\": \"oops\", \n");
        Assert.StartsWith($"{bad}:2: bad JSON", Assert.Throws<SharpTuneException>(() => TextDataset.Load(bad)).Message);

        string missing = _files.Write("missing.jsonl", "{\"text\": \"ok\", \"label\": \"a\"}\n{\"text\": \"no label\"}\n");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(missing));
        Assert.StartsWith($"{missing}:2:", error.Message);
        Assert.Contains("missing key 'label'", error.Message);
    }

    [Fact]
    public void Jsonl_list_label_for_a_single_label_task_is_a_bad_row()
    {
        string path = _files.Write("t.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": [\"x\"]}\n");
        var error = Assert.Throws<SharpTuneException>(() => TextDataset.Load(path));
        Assert.StartsWith($"{path}:2:", error.Message);
        Assert.Contains("lists need the multi task", error.Message);
    }

    [Fact]
    public void A_json_array_file_is_rejected_with_a_hint()
    {
        string path = _files.Write("t.json", "[{\"text\": \"a\", \"label\": \"x\"}]");
        Assert.Contains("not JSON lines", Assert.Throws<SharpTuneException>(() => TextDataset.Load(path)).Message);
    }

    [Fact]
    public void Jsonl_skip_bad_rows_keeps_the_good_ones()
    {
        string path = _files.Write("t.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\nnot json\n[1]\n{\"text\": \"b\", \"label\": \"y\"}\n");
        LoadedData data = TextDataset.Load(path, new DataOptions { SkipBadRows = true });
        Assert.Equal(["a", "b"], data.Examples.Select(e => e.Text));
        Assert.Equal(2, data.SkippedRows);
    }
}
