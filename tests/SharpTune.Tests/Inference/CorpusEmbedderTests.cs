using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Inference;
using SharpTune.Models;

namespace SharpTune.Tests.Inference;

/// <summary>
/// <see cref="CorpusEmbedder"/> on the tiny random model: every format read back by a reader written here (NumPy's header
/// parsed by hand, CSV split by hand, safetensors by SharpTune's loader, Parquet by Parquet.Net's column reader) and compared
/// with the <see cref="Embedder"/> embedding each text alone; resuming after a crash; bad input.
/// </summary>
public sealed class CorpusEmbedderTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("sharptune-corpus-").FullName;
    private readonly PretrainedEncoder encoder;
    private readonly List<TextExample> texts = TinyModels.ToyTexts(23, seed: 5);

    public CorpusEmbedderTests()
    {
        encoder = PretrainedEncoder.Load(TinyModels.Directory(Path.Combine(folder, "model")));
        // Quoted texts with commas and a line break, so that file lines and rows differ.
        texts[3] = TextExample.Single("w5, w6\nw7 \"w8\"", "no");
        File.WriteAllText(Data, "text,label\n" + string.Concat(texts.Select(e => $"\"{e.Text.Replace("\"", "\"\"")}\",{e.Label}\n")));
    }

    private string Data => Path.Combine(folder, "texts.csv");

    public void Dispose()
    {
        encoder.Dispose();
        Directory.Delete(folder, recursive: true);
    }

    private Embedder Embedder(Pooling pooling = Pooling.Mean, bool normalize = false, int batchSize = 4) =>
        new(encoder, new EmbedderOptions { Pooling = pooling, Normalize = normalize, BatchSize = batchSize });

    private CorpusEmbeddingResult Run(string output, Pooling pooling = Pooling.Mean, int chunk = 5, bool overwrite = false, IProgress<CorpusProgress>? progress = null,
        bool normalize = false, DataOptions? data = null) =>
        new CorpusEmbedder(Embedder(pooling, normalize), new CorpusEmbedderOptions { ChunkSize = chunk, Overwrite = overwrite, Data = data ?? new DataOptions() })
            .Run(Data, output, progress);

    // Each text embedded alone (batch of one: no padding), in file order.
    private float[][] Alone(Pooling pooling = Pooling.Mean, bool normalize = false)
    {
        var single = Embedder(pooling, normalize, batchSize: 1);
        return texts.Select(e => single.Embed(e.Text).Vector).ToArray();
    }

    private static void AssertClose(float[][] expected, float[][] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i].Length, actual[i].Length);
            double diff = expected[i].Zip(actual[i], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(diff < 1e-5, $"row {i}: differs from the text embedded alone by {diff:E2}");
        }
    }

    /// <summary>A .npy file read by hand: magic, version 1.0, header dict, little-endian float32 rows.</summary>
    internal static (long[] Shape, float[][] Rows) ReadNpy(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0], bytes[..8]);
        int headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        Assert.Equal(0, (10 + headerLength) % 64);
        string header = Encoding.ASCII.GetString(bytes, 10, headerLength);
        Assert.EndsWith("\n", header);
        Assert.Contains("'descr': '<f4'", header);
        Assert.Contains("'fortran_order': False", header);
        string shapeText = header[(header.IndexOf("'shape': (", StringComparison.Ordinal) + 10)..];
        long[] shape = shapeText[..shapeText.IndexOf(')')].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(10 + headerLength + shape[0] * shape[1] * 4, bytes.Length);
        var rows = new float[shape[0]][];
        for (int r = 0; r < rows.Length; r++)
        {
            rows[r] = new float[shape[1]];
            for (int c = 0; c < shape[1]; c++) rows[r][c] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(10 + headerLength + (int)((r * shape[1] + c) * 4)));
        }
        return (shape, rows);
    }

    internal static (string[] Header, string[][] Rows) ReadCsv(string path)
    {
        string[] lines = File.ReadAllText(path).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return (lines[0].Split(','), lines[1..].Select(l => l.Split(',')).ToArray());
    }

    public sealed class ParquetRow
    {
        [System.Text.Json.Serialization.JsonPropertyName("line")] public long Line { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("embedding")] public List<float> Embedding { get; set; } = [];
    }

    public sealed class TokenParquetRow
    {
        [System.Text.Json.Serialization.JsonPropertyName("line")] public long Line { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("token")] public int Token { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("embedding")] public List<float> Embedding { get; set; } = [];
    }

    /// <summary>A Parquet file read back by Parquet.Net's deserializer into a class declared here.</summary>
    internal static async Task<(long[] Lines, int[]? Tokens, float[][] Rows)> ReadParquet(string path)
    {
        var schema = await global::Parquet.ParquetReader.ReadSchemaAsync(path);
        if (schema.Fields.Any(f => f.Name == "token"))
        {
            IList<TokenParquetRow> tokenRows = (await global::Parquet.Serialization.ParquetSerializer.DeserializeAsync<TokenParquetRow>(path)).Data;
            return (tokenRows.Select(r => r.Line).ToArray(), tokenRows.Select(r => r.Token).ToArray(), tokenRows.Select(r => r.Embedding.ToArray()).ToArray());
        }
        IList<ParquetRow> rows = (await global::Parquet.Serialization.ParquetSerializer.DeserializeAsync<ParquetRow>(path)).Data;
        return (rows.Select(r => r.Line).ToArray(), null, rows.Select(r => r.Embedding.ToArray()).ToArray());
    }

    [Fact]
    public void Npy_rows_are_in_input_order_and_equal_each_text_embedded_alone()
    {
        string output = Path.Combine(folder, "out.npy");
        CorpusEmbeddingResult result = Run(output, chunk: 5);
        var (shape, rows) = ReadNpy(output);
        Assert.Equal([texts.Count, 32L], shape);
        Assert.Equal(texts.Count, result.Texts);
        AssertClose(Alone(), rows);
        Assert.False(File.Exists(CorpusEmbedder.PartialFile(output)));
        Assert.False(File.Exists(CorpusEmbedder.ProgressFile(output)));
    }

    [Fact]
    public void Csv_has_a_header_and_one_row_per_text_with_its_file_line()
    {
        string output = Path.Combine(folder, "out.csv");
        Run(output, pooling: Pooling.Cls, normalize: true);
        var (header, rows) = ReadCsv(output);
        Assert.Equal(["line", .. Enumerable.Range(0, 32).Select(d => $"dim_{d}")], header);
        // Line 1 is the header; text 3 spans two lines, so text 4 starts on line 7.
        Assert.Equal([2, 3, 4, 5, 7], rows.Take(5).Select(r => int.Parse(r[0], CultureInfo.InvariantCulture)));
        AssertClose(Alone(Pooling.Cls, normalize: true), rows.Select(r => r[1..].Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray());
    }

    [Fact]
    public void Safetensors_holds_one_embeddings_tensor_of_all_texts()
    {
        string output = Path.Combine(folder, "out.safetensors");
        Run(output, chunk: 4);
        var tensors = SafeTensors.Load(output);
        Assert.Equal(["embeddings"], tensors.Keys);
        Assert.Equal([texts.Count, 32L], tensors["embeddings"].shape);
        float[] flat = tensors["embeddings"].data<float>().ToArray();
        AssertClose(Alone(), flat.Chunk(32).ToArray());
        Assert.Equal("mean", SafeTensors.ReadMetadata(output)["pooling"]);
        foreach (var tensor in tensors.Values) tensor.Dispose();
    }

    [Fact]
    public async Task Parquet_has_a_line_column_and_a_list_column_one_row_group_per_chunk()
    {
        string output = Path.Combine(folder, "out.parquet");
        Run(output, chunk: 10);
        var (lines, tokens, rows) = await ReadParquet(output);
        Assert.Null(tokens);
        Assert.Equal(texts.Count, lines.Length);
        Assert.Equal(2, lines[0]);
        AssertClose(Alone(), rows);
        await using var reader = await global::Parquet.ParquetReader.CreateAsync(output);
        Assert.Equal(3, reader.RowGroupCount);
        Assert.Equal(["line", "embedding"], reader.Schema.Fields.Select(f => f.Name));
    }

    [Fact]
    public async Task Pooling_none_writes_one_row_per_token_with_line_and_token_columns()
    {
        string output = Path.Combine(folder, "tokens.parquet");
        CorpusEmbeddingResult result = Run(output, pooling: Pooling.None, chunk: 6);
        var single = Embedder(Pooling.None, batchSize: 1);
        var expected = texts.SelectMany(e => single.Embed(e.Text).Rows).ToArray();
        var (lines, tokens, rows) = await ReadParquet(output);
        Assert.Equal(expected.Length, result.Rows);
        AssertClose(expected, rows);
        Assert.Equal(texts.SelectMany(e => Enumerable.Range(0, single.Embed(e.Text).Rows.Length)), tokens!);
        Assert.Equal(0, tokens![0]);
        Assert.Equal(2, lines[0]);

        string csv = Path.Combine(folder, "tokens.csv");
        Run(csv, pooling: Pooling.None);
        var (header, csvRows) = ReadCsv(csv);
        Assert.Equal(["line", "token", "dim_0"], header[..3]);
        AssertClose(expected, csvRows.Select(r => r[2..].Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray());
    }

    [Theory]
    [InlineData("npy")]
    [InlineData("safetensors")]
    public void Pooling_none_is_refused_for_a_matrix_format_naming_the_ones_that_hold_it(string extension)
    {
        var error = Assert.Throws<SharpTuneException>(() => Run(Path.Combine(folder, "x." + extension), pooling: Pooling.None));
        Assert.Contains(".parquet or .csv", error.Message);
    }

    /// <summary>Stops the run (as a crash would) once <paramref name="chunks"/> chunks are saved.</summary>
    private sealed class CrashAfter(int chunks) : IProgress<CorpusProgress>
    {
        private int reports;
        public void Report(CorpusProgress value)
        {
            if (value.Done > 0 && ++reports == chunks) throw new TimeoutException("simulated crash");
        }
    }

    [Theory]
    [InlineData("npy")]
    [InlineData("csv")]
    [InlineData("safetensors")]
    [InlineData("parquet")]
    public void An_interrupted_run_resumes_after_its_last_complete_chunk_and_ends_equal_to_an_uninterrupted_run(string extension)
    {
        string whole = Path.Combine(folder, "whole." + extension);
        Run(whole, chunk: 4);

        string output = Path.Combine(folder, "resumed." + extension);
        Assert.Throws<TimeoutException>(() => Run(output, chunk: 4, progress: new CrashAfter(2)));
        Assert.False(File.Exists(output));
        Assert.True(File.Exists(CorpusEmbedder.ProgressFile(output)));
        // A crash in the middle of the next chunk: half a row (or half a row group) of garbage after the saved length.
        File.AppendAllText(CorpusEmbedder.PartialFile(output), "half a chunk");

        var reports = new List<CorpusProgress>();
        CorpusEmbeddingResult result = Run(output, chunk: 4, progress: new Progress(reports.Add));
        Assert.Equal(8, result.ResumedFrom);
        Assert.Equal(8, reports[0].Done);
        Assert.Equal(texts.Count, reports[^1].Done);
        Assert.Equal(File.ReadAllBytes(whole), File.ReadAllBytes(output));
        Assert.False(File.Exists(CorpusEmbedder.ProgressFile(output)));
    }

    private sealed class Progress(Action<CorpusProgress> report) : IProgress<CorpusProgress>
    {
        public void Report(CorpusProgress value) => report(value);
    }

    [Fact]
    public void Resuming_with_other_options_is_refused_naming_the_setting()
    {
        string output = Path.Combine(folder, "out.npy");
        Assert.Throws<TimeoutException>(() => Run(output, chunk: 4, progress: new CrashAfter(1)));
        var error = Assert.Throws<CorpusResumeException>(() => Run(output, pooling: Pooling.Cls, chunk: 4));
        Assert.Equal("pooling", error.Setting);
        Assert.Contains("pooling was \"mean\", now \"cls\"", error.Message);

        // Another input under the same name.
        File.AppendAllText(Data, "\"w9 w10\",yes\n");
        Assert.Equal("input", Assert.Throws<CorpusResumeException>(() => Run(output, chunk: 4)).Setting);
        // Overwrite starts again.
        Assert.Equal(0, Run(output, chunk: 4, overwrite: true).ResumedFrom);
        Assert.Equal(texts.Count + 1, ReadNpy(output).Shape[0]);
    }

    [Fact]
    public void An_existing_output_is_kept_unless_overwrite_is_set()
    {
        string output = Path.Combine(folder, "out.csv");
        File.WriteAllText(output, "keep me");
        Assert.Contains("CorpusEmbedderOptions.Overwrite", Assert.Throws<SharpTuneException>(() => Run(output)).Message);
        Assert.Equal("keep me", File.ReadAllText(output));
        Run(output, overwrite: true);
        Assert.StartsWith("line,dim_0", File.ReadAllText(output));
    }

    [Fact]
    public void An_empty_text_is_a_bad_row_naming_file_line_and_column_or_skipped_on_request()
    {
        File.WriteAllText(Data, "text,label\nw5 w6,a\n\" \",b\nw7,c\n");
        string output = Path.Combine(folder, "out.npy");
        var error = Assert.Throws<SharpTuneException>(() => Run(output));
        Assert.Equal($"{Data}:3: column 'text' is empty; there is nothing to embed.", error.Message);

        CorpusEmbeddingResult result = Run(output, data: new DataOptions { SkipBadRows = true });
        Assert.Equal(2, result.Texts);
        Assert.Equal(1, result.SkippedRows);
        var single = Embedder(batchSize: 1);
        AssertClose([single.Embed("w5 w6").Vector, single.Embed("w7").Vector], ReadNpy(output).Rows);
    }

    [Fact]
    public void A_txt_file_gives_the_bytes_of_the_same_texts_in_a_csv_and_its_line_numbers()
    {
        List<string> lines = texts.Select(e => e.Text).Where(t => !t.Contains('\n')).ToList();
        string txt = Path.Combine(folder, "lines.txt"), csv = Path.Combine(folder, "lines.csv");
        File.WriteAllText(txt, string.Join("\r\n", lines)); // CRLF, and no newline after the last line
        File.WriteAllText(csv, "text\n" + string.Concat(lines.Select(t => $"\"{t.Replace("\"", "\"\"")}\"\n")));
        var corpus = new CorpusEmbedder(Embedder(), new CorpusEmbedderOptions { ChunkSize = 5 });
        corpus.Run(txt, Path.Combine(folder, "txt.npy"));
        corpus.Run(csv, Path.Combine(folder, "csv.npy"));
        Assert.Equal(File.ReadAllBytes(Path.Combine(folder, "csv.npy")), File.ReadAllBytes(Path.Combine(folder, "txt.npy")));
        Assert.Equal(lines.Count, ReadNpy(Path.Combine(folder, "txt.npy")).Shape[0]);

        corpus.Run(txt, Path.Combine(folder, "txt.csv"));
        Assert.Equal(Enumerable.Range(1, lines.Count), ReadCsv(Path.Combine(folder, "txt.csv")).Rows.Select(r => int.Parse(r[0], CultureInfo.InvariantCulture)));
    }

    [Fact]
    public void An_empty_line_of_a_txt_is_a_bad_row_naming_file_and_line_or_skipped_on_request()
    {
        string txt = Path.Combine(folder, "gap.txt"), output = Path.Combine(folder, "gap.csv");
        File.WriteAllText(txt, "w5 w6\n\nw7\n  \nw8\n");
        var error = Assert.Throws<SharpTuneException>(() => new CorpusEmbedder(Embedder()).Run(txt, output));
        Assert.Equal($"{txt}:2: the line is empty; there is nothing to embed.", error.Message);

        CorpusEmbeddingResult result = new CorpusEmbedder(Embedder(), new CorpusEmbedderOptions { Data = new DataOptions { SkipBadRows = true } }).Run(txt, output);
        Assert.Equal(3, result.Texts);
        Assert.Equal(2, result.SkippedRows);
        Assert.Equal([$"{txt}:2: the line is empty; there is nothing to embed.", $"{txt}:4: the line is empty; there is nothing to embed."], result.SkipReasons);
        Assert.Equal(["1", "3", "5"], ReadCsv(output).Rows.Select(r => r[0]));
    }

    [Fact]
    public void Bad_input_names_the_file_and_line_or_the_extension()
    {
        File.WriteAllText(Data, "text,label\nw5,a\nw6,b,extra\n");
        Assert.StartsWith($"{Data}:3: expected 2 fields", Assert.Throws<SharpTuneException>(() => Run(Path.Combine(folder, "a.npy"))).Message);
        Assert.False(File.Exists(Path.Combine(folder, "a.npy.partial")));

        Assert.Contains("unknown output extension '.txt'", Assert.Throws<SharpTuneException>(() => Run(Path.Combine(folder, "a.txt"))).Message);
        string missing = Path.Combine(folder, "missing.csv");
        Assert.Equal($"{missing}: data file not found.",
            Assert.Throws<SharpTuneException>(() => new CorpusEmbedder(Embedder()).Run(missing, Path.Combine(folder, "b.npy"))).Message);

        File.WriteAllText(Data, "text,label\nw5,a\n");
        string blocked = Path.Combine(folder, "a-file", "out.npy");
        File.WriteAllText(Path.Combine(folder, "a-file"), "");
        Assert.StartsWith($"{blocked}: cannot write the embeddings", Assert.Throws<SharpTuneException>(() => Run(blocked)).Message);
    }
}
