using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using TorchSharp;

namespace SharpTune.Inference;

/// <summary>The files <see cref="CorpusEmbedder"/> writes; each is read without SharpTune.</summary>
public enum EmbeddingFileFormat
{
    /// <summary>NumPy .npy (format 1.0): little-endian float32, shape [texts, hidden]; <c>numpy.load</c>.</summary>
    Npy,
    /// <summary>CSV: a header <c>line,dim_0,…</c>, one row per text (per token for <see cref="Pooling.None"/>, with a <c>token</c> column); <c>pandas.read_csv</c>.</summary>
    Csv,
    /// <summary>safetensors: one float32 tensor <c>embeddings</c> [texts, hidden]; <c>safetensors.numpy.load_file</c>.</summary>
    Safetensors,
    /// <summary>Parquet: an int64 column <c>line</c> and a list&lt;float&gt; column <c>embedding</c> (and an int32 <c>token</c> for <see cref="Pooling.None"/>); <c>pandas.read_parquet</c>.</summary>
    Parquet,
}

/// <summary>Options of a <see cref="CorpusEmbedder"/>.</summary>
public sealed record CorpusEmbedderOptions
{
    /// <summary>How the input is read: text and text-pair columns, <see cref="DataOptions.SkipBadRows"/>, format. Labels are never read.</summary>
    public DataOptions Data { get; init; } = new();

    /// <summary>The output format; default (null) from the output's extension (.npy, .csv, .safetensors, .parquet).</summary>
    public EmbeddingFileFormat? Format { get; init; }

    /// <summary>
    /// Texts read, embedded (sorted by length into batches by the <see cref="Embedder"/>) and written per chunk; progress is
    /// saved after each, so a crash loses at most one chunk. Memory grows with this, never with the file. Default 1024.
    /// </summary>
    public int ChunkSize { get; init; } = 1024;

    /// <summary>Replace an existing output, and start again instead of resuming an interrupted run. Default false.</summary>
    public bool Overwrite { get; init; }

    /// <summary>Checks the values; the message names the property.</summary>
    public CorpusEmbedderOptions Validate()
    {
        if (ChunkSize < 1) throw new SharpTuneException($"CorpusEmbedderOptions.ChunkSize must be at least 1 (got {ChunkSize}).");
        return this;
    }
}

/// <summary>Progress of <see cref="CorpusEmbedder.Run"/>, reported after each chunk.</summary>
/// <param name="Done">Texts written so far (including those of an interrupted run that this one resumed).</param>
/// <param name="Total">Texts in the file.</param>
/// <param name="ResumedFrom">Texts already written when this run started (0 for a fresh run).</param>
/// <param name="Elapsed">Time since this run started.</param>
public sealed record CorpusProgress(long Done, long Total, long ResumedFrom, TimeSpan Elapsed)
{
    /// <summary>Texts per second in this run.</summary>
    public double TextsPerSecond => Elapsed.TotalSeconds > 0 ? (Done - ResumedFrom) / Elapsed.TotalSeconds : 0;

    /// <summary>Estimated time to the end at this run's rate.</summary>
    public TimeSpan Remaining => Done > ResumedFrom ? Elapsed * ((double)(Total - Done) / (Done - ResumedFrom)) : TimeSpan.Zero;
}

/// <summary>What <see cref="CorpusEmbedder.Run"/> wrote.</summary>
/// <param name="Output">The output file.</param>
/// <param name="Format">Its format.</param>
/// <param name="Texts">Texts embedded (one output row each, or one per token for <see cref="Pooling.None"/>).</param>
/// <param name="Rows">Rows written: <paramref name="Texts"/>, or the number of tokens for <see cref="Pooling.None"/>.</param>
/// <param name="Dimensions">Values per row (the encoder's hidden size).</param>
/// <param name="ResumedFrom">Texts an interrupted run had written already (0 for a fresh run).</param>
/// <param name="SkippedRows">Input rows skipped under <see cref="DataOptions.SkipBadRows"/> (bad rows and empty texts).</param>
/// <param name="SkipReasons">Why, for the first <see cref="TextDataset.MaxSkipReasons"/> of them.</param>
public sealed record CorpusEmbeddingResult(string Output, EmbeddingFileFormat Format, long Texts, long Rows, int Dimensions, long ResumedFrom,
    int SkippedRows, IReadOnlyList<string> SkipReasons);

/// <summary>
/// A setting of an interrupted run differs from this one's, so its output cannot be continued. <see cref="Setting"/> is
/// the name of the setting as the progress file records it.
/// </summary>
public sealed class CorpusResumeException(string message, string setting) : SharpTuneException(message)
{
    /// <summary>The setting that differs: input, model, dimensions, format, pooling, normalize, max_length, precision, runtime, text_column, text_pair_column or skip_bad_rows.</summary>
    public string Setting { get; } = setting;
}

/// <summary>
/// Embeds every text of a file with an <see cref="Embedder"/> and writes the vectors, in input order, to a .npy, .csv,
/// .safetensors or .parquet file: streamed, so memory is bounded by <see cref="CorpusEmbedderOptions.ChunkSize"/> whatever
/// the file's size, and resumable: a run that is killed continues where the last complete chunk ended.
/// </summary>
/// <remarks>
/// <para>The file is read twice: once to count (and check) its rows, so that the output's header holds its final shape from the
/// start and a bad row fails in seconds, not after hours of embedding; then in chunks that are embedded and written.</para>
/// <para>The output is assembled in <c>OUTPUT.partial</c>, and <c>OUTPUT.progress.json</c> records after each chunk (flushed to
/// disk first) how many texts and bytes are complete, with the input's length and the hash of its first MiB, the model's
/// weights hash and the options. A new run with a progress file continues it when all of these match (it refuses, naming the
/// one that differs, when not): it cuts the partial file back to the recorded length and goes on. The finished file is
/// renamed into place and the progress file deleted, so OUTPUT only ever exists complete.</para>
/// <para>Parquet keeps a footer at the end of the file, rewritten by each appended row group (one per chunk): the progress file
/// also holds the footer of the last complete chunk, which a resumed run puts back before appending.</para>
/// </remarks>
public sealed class CorpusEmbedder
{
    private const int FormatVersion = 1;
    private const int HashedPrefixBytes = 1 << 20;
    private readonly Embedder embedder;

    /// <summary>Creates a corpus embedder over <paramref name="embedder"/> (its pooling, normalisation, truncation and batch size apply).</summary>
    public CorpusEmbedder(Embedder embedder, CorpusEmbedderOptions? options = null)
    {
        this.embedder = embedder;
        Options = (options ?? new CorpusEmbedderOptions()).Validate();
    }

    /// <summary>The options in force.</summary>
    public CorpusEmbedderOptions Options { get; }

    /// <summary>The file in which <paramref name="output"/> is assembled until it is complete.</summary>
    public static string PartialFile(string output) => output + ".partial";

    /// <summary>The progress record of an unfinished <paramref name="output"/>.</summary>
    public static string ProgressFile(string output) => output + ".progress.json";

    /// <summary>The format an output name implies (.npy, .csv, .safetensors, .parquet), or null for another extension.</summary>
    public static EmbeddingFileFormat? FormatOf(string output) => Path.GetExtension(output).ToLowerInvariant() switch
    {
        ".npy" => EmbeddingFileFormat.Npy,
        ".csv" => EmbeddingFileFormat.Csv,
        ".safetensors" => EmbeddingFileFormat.Safetensors,
        ".parquet" => EmbeddingFileFormat.Parquet,
        _ => null,
    };

    /// <summary>Whether a format holds <see cref="Pooling.None"/>'s rows (one per token): csv and parquet do, with line and token columns.</summary>
    public static bool HoldsTokenRows(EmbeddingFileFormat format) => format is EmbeddingFileFormat.Csv or EmbeddingFileFormat.Parquet;

    /// <summary>
    /// Embeds the texts of <paramref name="data"/> (a .csv, .tsv, .jsonl or .txt file read as <see cref="TextDataset"/> reads it) and
    /// writes them to <paramref name="output"/>, continuing an interrupted run of the same input and options.
    /// </summary>
    /// <exception cref="SharpTuneException">
    /// The input is missing or has a bad row or an empty text (file:line, column), the output's extension is unknown or it
    /// cannot be written, the output exists (without <see cref="CorpusEmbedderOptions.Overwrite"/>), or an interrupted run's
    /// settings differ (<see cref="CorpusResumeException"/>).
    /// </exception>
    public CorpusEmbeddingResult Run(string data, string output, IProgress<CorpusProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        EmbeddingFileFormat format = Options.Format ?? FormatOf(output) ?? throw new SharpTuneException(
            $"{output}: unknown output extension '{Path.GetExtension(output)}'; use .npy, .csv, .safetensors or .parquet, or set CorpusEmbedderOptions.Format.");
        Pooling pooling = embedder.Options.Pooling;
        if (pooling == Pooling.None && !HoldsTokenRows(format))
            throw new SharpTuneException(
                $"{output}: EmbedderOptions.Pooling None gives one row per token, which a {format.ToString().ToLowerInvariant()} matrix cannot tie to its text; write .parquet or .csv (with line and token columns), or pool (Cls, Mean).");
        if (Directory.Exists(output)) throw new SharpTuneException($"{output}: the output is a directory; give a file name.");
        if (File.Exists(output) && !Options.Overwrite)
            throw new SharpTuneException($"{output}: already exists; set CorpusEmbedderOptions.Overwrite to replace it.");
        DataOptions dataOptions = Options.Data with { ReadLabels = false };

        var count = CountTexts(data, dataOptions);
        int dimensions = embedder.Model.Config.HiddenSize;
        JsonObject settings = Settings(data, format, dataOptions, count.Texts, dimensions);

        string partial = PartialFile(output), progressFile = ProgressFile(output);
        try
        {
            string? folder = Path.GetDirectoryName(Path.GetFullPath(output));
            if (folder is not null) Directory.CreateDirectory(folder);
            if (Options.Overwrite) { File.Delete(progressFile); File.Delete(partial); }
            Progress? resumed = File.Exists(progressFile) ? Resumable(progressFile, partial, settings) : null;

            using EmbeddingWriter writer = EmbeddingWriter.Create(format, partial, pooling, dimensions, count.Texts, embedder.Options.Normalize);
            if (resumed is null) writer.Begin();
            else writer.Reopen(resumed.Bytes, resumed.Tail);
            long done = resumed?.Texts ?? 0, rows = resumed?.Rows ?? 0, start = done;
            var clock = Stopwatch.StartNew();
            progress?.Report(new CorpusProgress(done, count.Texts, start, TimeSpan.Zero));

            using (TextDataReader reader = TextDataset.Open(data, dataOptions))
            {
                foreach (TextExample[] chunk in Texts(reader).Skip(checked((int)Math.Min(done, int.MaxValue))).Chunk(Options.ChunkSize))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    IReadOnlyList<TextEmbedding> embedded = embedder.Embed(chunk.Select(e => e.Text).ToList(), chunk.Select(e => e.TextPair).ToList());
                    writer.Write(chunk, embedded);
                    (long bytes, byte[]? tail) = writer.Checkpoint();
                    done += chunk.Length;
                    rows += embedded.Sum(e => (long)e.Rows.Length);
                    SaveProgress(progressFile, settings, new Progress(done, rows, bytes, tail));
                    progress?.Report(new CorpusProgress(done, count.Texts, start, clock.Elapsed));
                }
            }
            if (done != count.Texts)
                throw new SharpTuneException($"{data}: had {count.Texts} texts when counted but {done} when embedded; the file changed while it was read.");
            writer.Finish();
            writer.Dispose();
            File.Move(partial, output, overwrite: Options.Overwrite);
            File.Delete(progressFile);
            return new CorpusEmbeddingResult(output, format, done, rows, dimensions, start, count.Skipped, count.Reasons);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SharpTuneException($"{output}: cannot write the embeddings: {e.Message}", e);
        }
    }

    // The texts to embed, in file order: an empty text is a bad row (there is nothing to embed), skipped or thrown as the reader's are.
    private IEnumerable<TextExample> Texts(TextDataReader reader)
    {
        foreach (TextExample example in reader.Examples())
        {
            if (string.IsNullOrWhiteSpace(example.Text))
            {
                if (!Options.Data.SkipBadRows) throw new SharpTuneException(EmptyText(reader, example));
                continue;
            }
            yield return example;
        }
    }

    private (long Texts, int Skipped, List<string> Reasons) CountTexts(string data, DataOptions dataOptions)
    {
        using TextDataReader reader = TextDataset.Open(data, dataOptions);
        long texts = 0, empty = 0;
        var reasons = new List<string>();
        foreach (TextExample example in reader.Examples())
        {
            if (!string.IsNullOrWhiteSpace(example.Text)) { texts++; continue; }
            string message = EmptyText(reader, example);
            if (!Options.Data.SkipBadRows) throw new SharpTuneException(message);
            empty++;
            reasons.Add(message);
        }
        if (texts == 0) throw new SharpTuneException($"{data}: no texts to embed{(reader.SkippedRows + empty > 0 ? $" (all {reader.SkippedRows + empty} rows skipped)" : "")}.");
        return (texts, (int)(reader.SkippedRows + empty), reader.SkipReasons.Concat(reasons).Take(TextDataset.MaxSkipReasons).ToList());
    }

    private static string EmptyText(TextDataReader reader, TextExample example) =>
        $"{reader.Path}:{example.Line}: {(reader.Format == DataFormat.Txt ? "the line" : $"column '{reader.Columns!.Text}'")} is empty; there is nothing to embed.";

    // What must match for an interrupted run to be continued; the keys are the names CorpusResumeException.Setting gives.
    private JsonObject Settings(string data, EmbeddingFileFormat format, DataOptions dataOptions, long texts, int dimensions) => new()
    {
        ["version"] = FormatVersion,
        ["input"] = $"{new FileInfo(data).Length} bytes, {texts} texts, sha256 of the first MiB {PrefixHash(data)}",
        ["model"] = WeightsHash(),
        ["dimensions"] = dimensions,
        ["format"] = format.ToString().ToLowerInvariant(),
        ["pooling"] = embedder.Options.Pooling.ToString().ToLowerInvariant(),
        ["normalize"] = embedder.Options.Normalize,
        ["max_length"] = embedder.MaxLength,
        ["precision"] = embedder.Options.Precision.ToString().ToLowerInvariant(),
        ["runtime"] = embedder.OnnxRuntime is null ? "torch" : "onnx",
        ["text_column"] = dataOptions.TextColumn,
        ["text_pair_column"] = dataOptions.TextPairColumn,
        ["skip_bad_rows"] = dataOptions.SkipBadRows,
    };

    private static string PrefixHash(string path)
    {
        using var stream = File.OpenRead(path);
        byte[] prefix = new byte[(int)Math.Min(HashedPrefixBytes, stream.Length)];
        stream.ReadExactly(prefix);
        return Convert.ToHexStringLower(SHA256.HashData(prefix));
    }

    // sha256 over every parameter's name and bytes: a fine-tuned model with the same config is a different model.
    private string WeightsHash()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var scope = torch.NewDisposeScope();
        foreach (var (name, parameter) in embedder.Model.named_parameters())
        {
            hash.AppendData(Encoding.UTF8.GetBytes(name));
            hash.AppendData(parameter.detach().cpu().contiguous().bytes);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private sealed record Progress(long Texts, long Rows, long Bytes, byte[]? Tail);

    // The interrupted run's progress, when its settings are this run's; otherwise a CorpusResumeException naming the first that differs.
    private static Progress Resumable(string progressFile, string partial, JsonObject settings)
    {
        JsonObject saved;
        try
        {
            saved = JsonNode.Parse(File.ReadAllText(progressFile)) as JsonObject ?? throw new JsonException("not an object");
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{progressFile}: unreadable progress file ({e.Message}); set CorpusEmbedderOptions.Overwrite to start again.", e);
        }
        foreach (var (key, value) in settings)
        {
            JsonNode? before = saved["settings"]?[key];
            if (!JsonNode.DeepEquals(before, value))
                throw new CorpusResumeException(
                    $"{progressFile}: cannot resume: {key} was {Show(before)}, now {Show(value)}; run again with the same input and options, or set CorpusEmbedderOptions.Overwrite to start again.",
                    key);
        }
        try
        {
            var progress = new Progress(saved["texts"]!.GetValue<long>(), saved["rows"]!.GetValue<long>(), saved["bytes"]!.GetValue<long>(),
                saved["tail"] is JsonNode tail ? Convert.FromBase64String(tail.GetValue<string>()) : null);
            long length = File.Exists(partial) ? new FileInfo(partial).Length : -1;
            if (length < progress.Bytes - (progress.Tail?.Length ?? 0))
                throw new SharpTuneException(
                    $"{partial}: {(length < 0 ? "missing" : $"{length} bytes")}, but {progressFile} records {progress.Bytes} written; set CorpusEmbedderOptions.Overwrite to start again.");
            return progress;
        }
        catch (Exception e) when (e is InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new SharpTuneException($"{progressFile}: unreadable progress file ({e.Message}); set CorpusEmbedderOptions.Overwrite to start again.", e);
        }

        static string Show(JsonNode? node) => node is null ? "none" : node.ToJsonString();
    }

    // Written beside, then renamed over: a crash leaves the old record or the new one, never half of one.
    private static void SaveProgress(string progressFile, JsonObject settings, Progress progress)
    {
        var json = new JsonObject
        {
            ["settings"] = settings.DeepClone(),
            ["texts"] = progress.Texts,
            ["rows"] = progress.Rows,
            ["bytes"] = progress.Bytes,
            ["tail"] = progress.Tail is null ? null : Convert.ToBase64String(progress.Tail),
        };
        string temp = progressFile + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            stream.Write(Encoding.UTF8.GetBytes(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true })));
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, progressFile, overwrite: true);
    }

    /// <summary>Appends chunks of embeddings to the partial file; <see cref="Checkpoint"/> makes them durable.</summary>
    private abstract class EmbeddingWriter(string path, Pooling pooling, int dimensions, long texts) : IDisposable
    {
        protected readonly string Path = path;
        protected readonly Pooling Pooling = pooling;
        protected readonly int Dimensions = dimensions;
        protected readonly long Texts = texts;
        protected FileStream? Stream;

        public static EmbeddingWriter Create(EmbeddingFileFormat format, string path, Pooling pooling, int dimensions, long texts, bool normalized) => format switch
        {
            EmbeddingFileFormat.Npy => new NpyWriter(path, pooling, dimensions, texts),
            EmbeddingFileFormat.Csv => new CsvWriter(path, pooling, dimensions, texts),
            EmbeddingFileFormat.Safetensors => new SafetensorsWriter(path, pooling, dimensions, texts, normalized),
            _ => new ParquetWriter(path, pooling, dimensions, texts),
        };

        /// <summary>Starts a new partial file: its header.</summary>
        public virtual void Begin()
        {
            Stream = new FileStream(Path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read);
            Stream.Write(Header());
        }

        /// <summary>Continues a partial file whose first <paramref name="length"/> bytes are complete.</summary>
        public virtual void Reopen(long length, byte[]? tail)
        {
            Stream = new FileStream(Path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            Stream.SetLength(length);
            Stream.Seek(0, SeekOrigin.End);
        }

        public abstract void Write(IReadOnlyList<TextExample> examples, IReadOnlyList<TextEmbedding> embeddings);

        /// <summary>Flushes to disk; returns the partial file's length (and, for Parquet, its footer).</summary>
        public virtual (long Bytes, byte[]? Tail) Checkpoint()
        {
            Stream!.Flush(flushToDisk: true);
            return (Stream.Length, null);
        }

        /// <summary>Checks the file is complete.</summary>
        public virtual void Finish() { }

        protected abstract byte[] Header();

        protected void WriteFloats(float[] values)
        {
            Span<byte> bytes = stackalloc byte[4];
            foreach (float value in values)
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
                Stream!.Write(bytes);
            }
        }

        public void Dispose()
        {
            Stream?.Dispose();
            Stream = null;
        }

        protected void CheckLength(long expected)
        {
            if (Stream!.Length != expected)
                throw new SharpTuneException($"{Path}: {Stream.Length} bytes written, {expected} expected for {Texts} texts of {Dimensions} values.");
        }
    }

    /// <summary>
    /// A float32 matrix [texts, hidden] after a header of fixed size (the shape is known from the counting pass): its rows are
    /// appended as they come, so a resumed run only needs the header's length, and the finished file's length is exact.
    /// </summary>
    private abstract class Float32MatrixWriter(string path, Pooling pooling, int dimensions, long texts) : EmbeddingWriter(path, pooling, dimensions, texts)
    {
        private long headerLength;

        /// <summary>The format's header, whose length does not depend on how many rows are written yet.</summary>
        protected abstract byte[] MatrixHeader();

        protected sealed override byte[] Header()
        {
            byte[] header = MatrixHeader();
            headerLength = header.Length;
            return header;
        }

        public sealed override void Reopen(long length, byte[]? tail)
        {
            Header();
            base.Reopen(length, tail);
        }

        public sealed override void Write(IReadOnlyList<TextExample> examples, IReadOnlyList<TextEmbedding> embeddings)
        {
            foreach (TextEmbedding embedding in embeddings) WriteFloats(embedding.Vector);
        }

        public sealed override void Finish() => CheckLength(headerLength + Texts * Dimensions * 4);
    }

    /// <summary>NumPy format 1.0: magic, version, header length, a padded Python dict, then the float32 rows.</summary>
    private sealed class NpyWriter(string path, Pooling pooling, int dimensions, long texts) : Float32MatrixWriter(path, pooling, dimensions, texts)
    {
        protected override byte[] MatrixHeader()
        {
            string dict = string.Create(CultureInfo.InvariantCulture, $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({Texts}, {Dimensions}), }}");
            // The whole header (10 bytes of preamble, the dict, spaces, a newline) is a multiple of 64 bytes, as NumPy writes it.
            int length = (10 + dict.Length + 1 + 63) / 64 * 64 - 10;
            byte[] header = new byte[10 + length];
            header[0] = 0x93;
            "NUMPY"u8.CopyTo(header.AsSpan(1));
            header[6] = 1;
            header[7] = 0;
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), (ushort)length);
            Encoding.ASCII.GetBytes(dict.PadRight(length - 1) + "\n").CopyTo(header, 10);
            return header;
        }
    }

    /// <summary>safetensors: the 8-byte header length, the header (SafeTensors' own builder), then the float32 rows.</summary>
    private sealed class SafetensorsWriter(string path, Pooling pooling, int dimensions, long texts, bool normalized) : Float32MatrixWriter(path, pooling, dimensions, texts)
    {
        protected override byte[] MatrixHeader()
        {
            var metadata = new Dictionary<string, string>
            {
                ["pooling"] = Pooling.ToString().ToLowerInvariant(), ["normalized"] = normalized ? "true" : "false", ["written_by"] = "sharptune embed",
            };
            byte[] json = Checkpoints.SafeTensors.BuildHeader([("embeddings", "F32", [Texts, Dimensions], Texts * Dimensions * 4)], metadata);
            byte[] header = new byte[8 + json.Length];
            BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)json.Length);
            json.CopyTo(header, 8);
            return header;
        }
    }

    /// <summary>CSV (UTF-8, LF): <c>line,dim_0,…</c>, or <c>line,token,dim_0,…</c> for token rows; numbers round-trip ("R").</summary>
    private sealed class CsvWriter(string path, Pooling pooling, int dimensions, long texts) : EmbeddingWriter(path, pooling, dimensions, texts)
    {
        private readonly StringBuilder line = new();

        protected override byte[] Header()
        {
            IEnumerable<string> columns = ["line", .. Pooling == Pooling.None ? ["token"] : Array.Empty<string>(), .. Enumerable.Range(0, Dimensions).Select(d => $"dim_{d}")];
            return Encoding.UTF8.GetBytes(string.Join(',', columns) + "\n");
        }

        public override void Write(IReadOnlyList<TextExample> examples, IReadOnlyList<TextEmbedding> embeddings)
        {
            for (int i = 0; i < examples.Count; i++)
            {
                for (int t = 0; t < embeddings[i].Rows.Length; t++)
                {
                    line.Clear().Append(examples[i].Line);
                    if (Pooling == Pooling.None) line.Append(',').Append(t);
                    foreach (float value in embeddings[i].Rows[t]) line.Append(',').Append(value.ToString("R", CultureInfo.InvariantCulture));
                    Stream!.Write(Encoding.UTF8.GetBytes(line.Append('\n').ToString()));
                }
            }
        }
    }

    /// <summary>
    /// Parquet: one row group per chunk, appended with Parquet.Net (which rewrites the footer each time, so the partial file is a
    /// valid Parquet file after every chunk); <see cref="Checkpoint"/> returns that footer for the progress file.
    /// </summary>
    private sealed class ParquetWriter(string path, Pooling pooling, int dimensions, long texts) : EmbeddingWriter(path, pooling, dimensions, texts)
    {
        private bool empty = true;

        protected override byte[] Header() => [];

        public override void Begin()
        {
            base.Begin();
            empty = true;
        }

        public override void Reopen(long length, byte[]? tail)
        {
            // The append that was interrupted wrote over the old footer: cut back to it and put it back.
            Stream = new FileStream(Path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            Stream.SetLength(length - (tail?.Length ?? 0));
            Stream.Seek(0, SeekOrigin.End);
            if (tail is not null) Stream.Write(tail);
            Stream.Flush(flushToDisk: true);
            empty = Stream.Length == 0;
        }

        public override void Write(IReadOnlyList<TextExample> examples, IReadOnlyList<TextEmbedding> embeddings)
        {
            var options = new global::Parquet.ParquetOptions { Append = !empty, RowGroupSize = int.MaxValue };
            Stream!.Seek(0, SeekOrigin.Begin);
            if (Pooling == Pooling.None)
            {
                var rows = new List<TokenRow>();
                for (int i = 0; i < examples.Count; i++)
                    for (int t = 0; t < embeddings[i].Rows.Length; t++) rows.Add(new TokenRow { Line = examples[i].Line, Token = t, Embedding = embeddings[i].Rows[t] });
                global::Parquet.Serialization.ParquetSerializer.SerializeAsync(rows, Stream, options).GetAwaiter().GetResult();
            }
            else
            {
                var rows = examples.Select((e, i) => new TextRow { Line = e.Line, Embedding = embeddings[i].Vector }).ToList();
                global::Parquet.Serialization.ParquetSerializer.SerializeAsync(rows, Stream, options).GetAwaiter().GetResult();
            }
            empty = false;
        }

        public override (long Bytes, byte[]? Tail) Checkpoint()
        {
            Stream!.Flush(flushToDisk: true);
            // A Parquet file ends with its footer, the footer's length (4 bytes) and "PAR1".
            Span<byte> end = stackalloc byte[8];
            Stream.Seek(-8, SeekOrigin.End);
            Stream.ReadExactly(end);
            int footer = BinaryPrimitives.ReadInt32LittleEndian(end);
            byte[] tail = new byte[footer + 8];
            Stream.Seek(-tail.Length, SeekOrigin.End);
            Stream.ReadExactly(tail);
            return (Stream.Length, tail);
        }
    }

    /// <summary>A Parquet row of a pooled text.</summary>
    internal sealed class TextRow
    {
        [System.Text.Json.Serialization.JsonPropertyName("line")] public long Line { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("embedding")][global::Parquet.Serialization.Attributes.ParquetListElementRequired] public float[] Embedding { get; set; } = [];
    }

    /// <summary>A Parquet row of one token (<see cref="Pooling.None"/>).</summary>
    internal sealed class TokenRow
    {
        [System.Text.Json.Serialization.JsonPropertyName("line")] public long Line { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("token")] public int Token { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("embedding")][global::Parquet.Serialization.Attributes.ParquetListElementRequired] public float[] Embedding { get; set; } = [];
    }
}
