using System.Diagnostics;
using System.Text;
using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Fuzz;

/// <summary>What one fuzz case did wrong: anything but success or a <see cref="SharpTuneException"/> naming the input.</summary>
/// <param name="Kind">The input kind.</param>
/// <param name="Case">The case number (0 is the unmutated seed).</param>
/// <param name="Mutations">The mutations applied, in order.</param>
/// <param name="Problem">The unexpected exception, hang, huge allocation or message without the path.</param>
/// <param name="SavedTo">The directory holding the failing input.</param>
public sealed record FuzzFailure(string Kind, int Case, string Mutations, string Problem, string SavedTo);

/// <summary>The totals of one run over one kind.</summary>
public sealed record FuzzReport(string Kind, int Cases, int Loaded, int Rejected, IReadOnlyList<FuzzFailure> Failures, TimeSpan Elapsed);

/// <summary>
/// Mutation fuzzing of every hand-written parser. Each kind has valid seed inputs (a directory of files); a case
/// copies one seed, mutates one of its files (bit flips, inserts, deletes, truncation, splices, oversized length
/// fields, deep JSON nesting, NaN/Inf, invalid UTF-8, BOMs, CRLF, NULs) and runs the loader on it. The loader must
/// succeed or throw a <see cref="SharpTuneException"/> whose message contains the input's path, within
/// <see cref="CaseTimeout"/> and allocating at most <see cref="MaxCaseAllocation"/> bytes.
/// </summary>
public sealed class FuzzEngine
{
    /// <summary>A case that runs longer than this is a hang.</summary>
    public static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(5);

    /// <summary>A case that allocates more managed memory than this trusted an untrusted size field.</summary>
    public const long MaxCaseAllocation = 256L << 20;

    private readonly string _repoRoot;

    /// <summary>Creates the engine over the repository at <paramref name="repoRoot"/> (seeds are read from it).</summary>
    public FuzzEngine(string repoRoot)
    {
        _repoRoot = repoRoot;
        // Safetensors tensors are libtorch tensors.
        SharpTune.Native.TorchRuntime.EnsureLoaded();
    }

    /// <summary>The input kinds, each with its seeds and loader.</summary>
    public static IReadOnlyList<string> Kinds { get; } =
        ["safetensors", "safetensors-index", "pickle", "config", "onnx", "wordpiece", "bpe", "sentencepiece", "tokenizer-json", "text", "tokens"];

    /// <summary>The repository root: the first directory above <paramref name="start"/> holding SharpTune.slnx.</summary>
    public static string FindRepoRoot(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SharpTune.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException($"SharpTune.slnx not found above {start}.");
    }

    /// <summary>Runs <paramref name="cases"/> mutated cases of <paramref name="kind"/> with a fixed <paramref name="seed"/>.</summary>
    /// <param name="kind">One of <see cref="Kinds"/>.</param>
    /// <param name="cases">Number of cases; case 0 of each seed is the seed itself.</param>
    /// <param name="seed">Random seed; the same seed gives the same cases.</param>
    /// <param name="workDirectory">Scratch directory; failing inputs are kept under its failures/ folder.</param>
    /// <param name="stopAtFirstFailure">Stop at the first failure (a hung case keeps its thread busy).</param>
    public FuzzReport Run(string kind, int cases, int seed, string workDirectory, bool stopAtFirstFailure = false)
    {
        var clock = Stopwatch.StartNew();
        var seeds = Seeds(kind);
        var random = new Random(seed ^ StableHash(kind));
        var failures = new List<FuzzFailure>();
        int loaded = 0, rejected = 0;
        string caseDir = Path.Combine(workDirectory, kind, "case");
        for (int n = 0; n < cases; n++)
        {
            var files = seeds[n % seeds.Count].ToDictionary(kv => kv.Key, kv => kv.Value);
            string mutations = n < seeds.Count ? "seed" : Mutate(kind, files, seeds, random);
            if (Directory.Exists(caseDir)) Directory.Delete(caseDir, recursive: true);
            Directory.CreateDirectory(caseDir);
            foreach (var (name, bytes) in files) File.WriteAllBytes(Path.Combine(caseDir, name), bytes);
            var (ok, problem) = Check(kind, caseDir);
            if (problem is null) { if (ok) loaded++; else rejected++; continue; }
            string saved = Path.Combine(workDirectory, "failures", $"{kind}-{n:D6}");
            if (Directory.Exists(saved)) Directory.Delete(saved, recursive: true);
            Directory.CreateDirectory(saved);
            foreach (var (name, bytes) in files) File.WriteAllBytes(Path.Combine(saved, name), bytes);
            failures.Add(new FuzzFailure(kind, n, mutations, problem, saved));
            if (stopAtFirstFailure || problem.StartsWith("hang", StringComparison.Ordinal)) break;
        }
        return new FuzzReport(kind, loaded + rejected + failures.Count, loaded, rejected, failures, clock.Elapsed);
    }

    /// <summary>Replays the regression inputs of fuzz/corpus/&lt;kind&gt;/ (one directory per case); returns their failures.</summary>
    public IReadOnlyList<FuzzFailure> Replay(string kind, string workDirectory)
    {
        var failures = new List<FuzzFailure>();
        string corpus = Path.Combine(_repoRoot, "fuzz", "corpus", kind);
        if (!Directory.Exists(corpus)) return failures;
        foreach (string input in Directory.GetDirectories(corpus).Order(StringComparer.Ordinal))
        {
            // A copy, so that loaders that write (the ONNX import) never touch the repository.
            string caseDir = Path.Combine(workDirectory, kind, "replay-" + Path.GetFileName(input));
            if (Directory.Exists(caseDir)) Directory.Delete(caseDir, recursive: true);
            Directory.CreateDirectory(caseDir);
            foreach (string file in Directory.GetFiles(input)) File.Copy(file, Path.Combine(caseDir, Path.GetFileName(file)));
            var (_, problem) = Check(kind, caseDir);
            if (problem is not null) failures.Add(new FuzzFailure(kind, -1, Path.GetFileName(input), problem, input));
        }
        return failures;
    }

    /// <summary>
    /// Runs the loader of <paramref name="kind"/> on <paramref name="caseDir"/> under the time limit.
    /// Returns whether it loaded, and the problem (null when the outcome is acceptable).
    /// </summary>
    public static (bool Loaded, string? Problem) Check(string kind, string caseDir)
    {
        // Counted on the loader's own thread, so that tests running in parallel do not count.
        long allocated = 0;
        var task = Task.Run(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                Load(kind, caseDir);
            }
            finally
            {
                Interlocked.Exchange(ref allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            }
        });
        bool finished;
        try
        {
            finished = task.Wait(CaseTimeout);
        }
        catch (AggregateException)
        {
            finished = true;
        }
        if (!finished) return (false, $"hang: no result after {CaseTimeout.TotalSeconds} s");
        if (Interlocked.Read(ref allocated) > MaxCaseAllocation) return (false, $"huge allocation: {allocated >> 20} MB");
        if (task.IsCompletedSuccessfully) return (true, null);
        var error = task.Exception!.InnerException!;
        if (error is not SharpTuneException)
            return (false, $"unexpected {error.GetType().FullName}: {error.Message}\n{error.StackTrace}");
        if (!error.Message.Contains(caseDir, StringComparison.Ordinal))
            return (false, $"message does not name the file: {error.Message}\n{error.StackTrace}");
        return (false, null);
    }

    private static readonly string[] Texts =
        ["Hello world!", "", "   ", "naïve café 中文 😀 don't", "a\u0000b\tc\r\nd", new string('x', 2000), "<s> [CLS] <mask> [MASK]"];

    private static void Load(string kind, string dir)
    {
        string P(string name) => Path.Combine(dir, name);
        switch (kind)
        {
            case "safetensors":
                foreach (var tensor in SafeTensors.Load(P("model.safetensors")).Values) tensor.Dispose();
                break;
            case "safetensors-index":
                foreach (var tensor in SafeTensorsIndex.Load(P(SafeTensorsIndex.FileName)).Values) tensor.Dispose();
                break;
            case "pickle":
                foreach (var tensor in PickleCheckpoint.Load(P(PickleCheckpoint.FileName)).Values) tensor.Dispose();
                break;
            case "config":
                Architectures.LoadConfig(P("config.json"));
                break;
            case "onnx":
                OnnxImporter.Import(P("tiny.onnx"), P("vocab.txt"), P("out"));
                break;
            case "wordpiece":
                Exercise(BertTokenizer.FromDirectory(dir));
                break;
            case "bpe" or "sentencepiece" or "tokenizer-json":
                Exercise(Tokenizer.FromDirectory(dir));
                break;
            case "text":
                foreach (string file in Directory.GetFiles(dir))
                {
                    TextDataset.Load(file);
                    TextDataset.Load(file, new DataOptions { SkipBadRows = true });
                }
                break;
            case "tokens":
                foreach (string file in Directory.GetFiles(dir))
                {
                    TokenDataset.Load(file);
                    TokenDataset.Load(file, new TokenDataOptions { SkipBadRows = true });
                }
                break;
            default:
                throw new ArgumentException($"unknown kind '{kind}'; kinds: {string.Join(", ", Kinds)}");
        }
    }

    // A tokenizer that loaded must also encode.
    private static void Exercise(Tokenizer tokenizer)
    {
        foreach (string text in Texts)
        {
            tokenizer.Encode(text);
            tokenizer.Encode(text, "second segment", maxLength: 16);
        }
        tokenizer.EncodeWords(["EU", "rejects", "", "café"]);
        tokenizer.EncodeBatch(Texts, maxLength: 32);
    }

    // ---- Seeds ----------------------------------------------------------------------------------------------

    private List<Dictionary<string, byte[]>> Seeds(string kind)
    {
        string fixtures = Path.Combine(_repoRoot, "tests", "SharpTune.Tests", "Fixtures", "hf");
        string seeds = Path.Combine(_repoRoot, "fuzz", "seeds");
        Dictionary<string, byte[]> Files(params string[] paths) => paths.ToDictionary(p => Path.GetFileName(p), File.ReadAllBytes);
        Dictionary<string, byte[]> Directory_(string path) => Files(Directory.GetFiles(path).Order(StringComparer.Ordinal).ToArray());
        return kind switch
        {
            "safetensors" => new[] { "deberta-v2", "xlm-roberta", "roberta" }.Select(a => Files(Path.Combine(fixtures, a, "model.safetensors"))).ToList(),
            "safetensors-index" => [Directory_(Path.Combine(seeds, "safetensors-index"))],
            "pickle" => [Directory_(Path.Combine(seeds, "pickle"))],
            "config" => Directory.GetDirectories(fixtures).Order(StringComparer.Ordinal).Select(d => Files(Path.Combine(d, "config.json"))).ToList(),
            "onnx" => [Directory_(Path.Combine(seeds, "onnx"))],
            "wordpiece" => [Directory_(Path.Combine(seeds, "wordpiece", "vocab")), Directory_(Path.Combine(seeds, "wordpiece", "json"))],
            "bpe" => [Files(Path.Combine(fixtures, "roberta", "vocab.json"), Path.Combine(fixtures, "roberta", "merges.txt"))],
            "sentencepiece" => [Files(Path.Combine(fixtures, "deberta-v2", "spm.model")), Files(Path.Combine(fixtures, "xlm-roberta", "sentencepiece.bpe.model"))],
            "tokenizer-json" => [Directory_(Path.Combine(seeds, "tokenizer-json", "bpe")), Directory_(Path.Combine(seeds, "tokenizer-json", "unigram"))],
            "text" => Directory.GetFiles(Path.Combine(seeds, "text")).Order(StringComparer.Ordinal).Select(f => Files(f)).ToList(),
            "tokens" => Directory.GetFiles(Path.Combine(seeds, "tokens")).Order(StringComparer.Ordinal).Select(f => Files(f)).ToList(),
            _ => throw new ArgumentException($"unknown kind '{kind}'; kinds: {string.Join(", ", Kinds)}"),
        };
    }

    private static int StableHash(string text)
    {
        int hash = 17;
        foreach (char c in text) hash = hash * 31 + c;
        return hash;
    }

    // ---- Mutations ------------------------------------------------------------------------------------------

    private static readonly byte[][] Interesting =
    [
        [0], [0xEF, 0xBB, 0xBF], [0xFF], [0xFE, 0xFF], [0xC3, 0x28], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC0, 0xAF],
        [(byte)'\r'], [(byte)'\r', (byte)'\n'], [(byte)'\n'], [(byte)'"'], [(byte)','], [(byte)'\t'], [(byte)'{'], [(byte)'}'],
        [(byte)'['], [(byte)']'], [(byte)'\\'], "\\u0000"u8.ToArray(), "\\ud800"u8.ToArray(), "null"u8.ToArray(), "-1"u8.ToArray(),
        "NaN"u8.ToArray(), "Infinity"u8.ToArray(), "1e999"u8.ToArray(), "9223372036854775808"u8.ToArray(), " "u8.ToArray(),
    ];

    private static readonly string[] JsonNumbers =
        ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "-1", "0", "-0", "0.5", "2147483648", "-2147483649",
         "9223372036854775807", "9223372036854775808", "18446744073709551616", "1e18", "4294967296", "\"12\"", "null", "true", "[]", "{}"];

    private static string Mutate(string kind, Dictionary<string, byte[]> files, List<Dictionary<string, byte[]>> seeds, Random random)
    {
        var names = files.Keys.Order(StringComparer.Ordinal).ToArray();
        // The index kind is about the index; its shards are fuzzed by the safetensors kind.
        string name = kind == "safetensors-index" && random.Next(4) > 0 ? SafeTensorsIndex.FileName : names[random.Next(names.Length)];
        var applied = new List<string>();
        int count = 1 + (random.Next(4) == 0 ? random.Next(3) : 0);
        byte[] data = files[name];
        for (int i = 0; i < count; i++)
        {
            var (mutated, label) = MutateOnce(kind, name, data, seeds, random);
            data = mutated;
            applied.Add(label);
        }
        files[name] = data;
        return $"{name}: {string.Join(", ", applied)}";
    }

    private static (byte[] Data, string Label) MutateOnce(string kind, string name, byte[] data, List<Dictionary<string, byte[]>> seeds, Random random)
    {
        bool json = name.EndsWith(".json", StringComparison.Ordinal) || name.EndsWith(".jsonl", StringComparison.Ordinal);
        bool protobuf = name.EndsWith(".onnx", StringComparison.Ordinal) || name.EndsWith(".model", StringComparison.Ordinal);
        bool safetensors = name.EndsWith(".safetensors", StringComparison.Ordinal);
        bool pickle = name.EndsWith(".bin", StringComparison.Ordinal);
        int choice = random.Next(14);
        // Half of the time, a mutation that knows the format (for a torch.save archive, three times in four: most
        // byte changes to a zip only fail its checksum, so the records are mutated inside a rebuilt archive).
        if (random.Next(2) == 0 || (pickle && random.Next(2) == 0))
        {
            if (pickle) return TorchArchiveMutation(data, random);
            if (safetensors) return SafeTensorsMutation(data, random);
            if (protobuf) return ProtobufMutation(data, random);
            if (json) return (JsonMutation(data, random, out string label), label);
        }
        int at = random.Next(data.Length + 1);
        switch (choice)
        {
            case 0:
            {
                var copy = (byte[])data.Clone();
                int flips = 1 + random.Next(8);
                for (int f = 0; f < flips && copy.Length > 0; f++) copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
                return (copy, $"flip {flips} bits");
            }
            case 1:
            {
                var bytes = new byte[1 + random.Next(16)];
                random.NextBytes(bytes);
                return (Insert(data, at, bytes), $"insert {bytes.Length} random bytes at {at}");
            }
            case 2:
            {
                var bytes = Interesting[random.Next(Interesting.Length)];
                return (Insert(data, at, bytes), $"insert {Convert.ToHexString(bytes)} at {at}");
            }
            case 3:
            {
                int length = Math.Min(data.Length - Math.Min(at, data.Length), 1 + random.Next(random.Next(2) == 0 ? 8 : 512));
                return ([.. data.AsSpan(0, at), .. data.AsSpan(at + length)], $"delete {length} bytes at {at}");
            }
            case 4:
                return (data[..at], $"truncate at {at}");
            case 5:
            {
                // Splice: a prefix of this file with a suffix of the same file of another seed (or itself).
                var others = seeds.Where(s => s.ContainsKey(name)).Select(s => s[name]).ToList();
                byte[] other = others[random.Next(others.Count)];
                int from = random.Next(other.Length + 1);
                return ([.. data.AsSpan(0, at), .. other.AsSpan(from)], $"splice at {at} with other from {from}");
            }
            case 6:
                return ([0xEF, 0xBB, 0xBF, .. data], "BOM prefix");
            case 7:
                return (ReplaceAll(data, "\n"u8.ToArray(), "\r\n"u8.ToArray()), "LF to CRLF");
            case 8:
                return (ReplaceAll(data, "\n"u8.ToArray(), "\r"u8.ToArray()), "LF to CR");
            case 9:
            {
                // Repeat a range many times: long lines, many duplicate entries.
                int length = Math.Min(data.Length - at, 1 + random.Next(64));
                var piece = data.AsSpan(at, length).ToArray();
                int times = 1 + random.Next(2000);
                var repeated = Enumerable.Repeat(piece, times).SelectMany(b => b).ToArray();
                return (Insert(data, at, repeated), $"repeat {length} bytes at {at} x{times}");
            }
            case 10:
            {
                var copy = (byte[])data.Clone();
                int nuls = 1 + random.Next(4);
                for (int k = 0; k < nuls && copy.Length > 0; k++) copy[random.Next(copy.Length)] = 0;
                return (copy, $"{nuls} NULs");
            }
            case 11:
            {
                var copy = (byte[])data.Clone();
                if (copy.Length > 0) copy[random.Next(copy.Length)] = (byte)(0x80 + random.Next(0x80));
                return (copy, "invalid UTF-8 byte");
            }
            default:
                if (pickle) return TorchArchiveMutation(data, random);
                if (safetensors) return SafeTensorsMutation(data, random);
                if (protobuf) return ProtobufMutation(data, random);
                return (JsonMutation(data, random, out string label), label);
        }
    }

    // ---- torch.save archives (pytorch_model.bin) ----------------------------------------------------------------

    private static readonly string[] Globals =
        ["posix\nsystem\n", "builtins\neval\n", "__builtin__\nexec\n", "torch\nUntypedStorage\n", "collections\nOrderedDict\n",
         "torch._utils\n_rebuild_tensor_v2\n", "torch._utils\n_rebuild_parameter\n", "torch\nHalfStorage\n", "torch\nBoolStorage\n",
         "torch\nLongStorage\n", "torch._utils\n_rebuild_tensor\n", "torch\nFloatStorage"];

    private static readonly byte[] PickleOpcodes =
        [.. "}])(tKMJXqrhjcRbsuaeQ.012GNBC"u8, 0x8a, 0x85, 0x86, 0x87, 0x88, 0x89, 0x93, 0x94, 0x95, 0x8c, 0x8d, 0x80, 0x8e];

    private static readonly long[] HugeInts =
        [0, 1, -1, 2, 255, 256, 65535, 65536, int.MaxValue, int.MinValue, 1L << 31, 1L << 32, 1L << 40, long.MaxValue, long.MinValue, long.MaxValue / 4];

    /// <summary>
    /// Opens the archive, mutates one record (data.pkl most often: opcode arguments, global names, string lengths,
    /// deep nesting, memo indexes, random bytes; or a storage's size, or the record set) and writes a valid zip again.
    /// </summary>
    private static (byte[], string) TorchArchiveMutation(byte[] data, Random random)
    {
        var records = new List<(string Name, byte[] Data)>();
        try
        {
            using var zip = new System.IO.Compression.ZipArchive(new MemoryStream(data), System.IO.Compression.ZipArchiveMode.Read);
            foreach (var entry in zip.Entries)
            {
                using var stream = entry.Open();
                var bytes = new MemoryStream();
                stream.CopyTo(bytes);
                records.Add((entry.FullName, bytes.ToArray()));
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException)
        {
            var copy = (byte[])data.Clone();
            if (copy.Length > 0) copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
            return (copy, "flip a bit (archive already broken)");
        }
        if (records.Count == 0) return (data, "empty archive");
        int pkl = records.FindIndex(r => r.Name.EndsWith("/data.pkl", StringComparison.Ordinal));
        string label;
        int choice = random.Next(10);
        if (pkl >= 0 && choice < 7)
        {
            var (mutated, inner) = PickleMutation(records[pkl].Data, random);
            records[pkl] = (records[pkl].Name, mutated);
            label = "data.pkl " + inner;
        }
        else if (choice < 9)
        {
            int i = random.Next(records.Count);
            var (name, bytes) = records[i];
            int keep = random.Next(3) switch { 0 => random.Next(bytes.Length + 1), 1 => bytes.Length + 1 + random.Next(64), _ => 0 };
            var resized = new byte[keep];
            bytes.AsSpan(0, Math.Min(keep, bytes.Length)).CopyTo(resized);
            records[i] = (name, resized);
            label = $"{name} resized {bytes.Length} -> {keep}";
        }
        else
        {
            int i = random.Next(records.Count);
            string name = records[i].Name;
            switch (random.Next(3))
            {
                case 0: records.RemoveAt(i); label = $"drop {name}"; break;
                case 1: records.Insert(0, (records[i].Name.Replace("/", "x/", StringComparison.Ordinal), records[i].Data)); label = $"rename a copy of {name} first"; break;
                default: records[i] = (name.Replace("data/", "data/9", StringComparison.Ordinal), records[i].Data); label = $"rename {name}"; break;
            }
        }
        var output = new MemoryStream();
        using (var zip = new System.IO.Compression.ZipArchive(output, System.IO.Compression.ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, bytes) in records)
            {
                using var stream = zip.CreateEntry(name, System.IO.Compression.CompressionLevel.NoCompression).Open();
                stream.Write(bytes);
            }
        }
        return (output.ToArray(), label);
    }

    private static (byte[], string) PickleMutation(byte[] data, Random random)
    {
        int at = random.Next(data.Length + 1);
        switch (random.Next(8))
        {
            case 0:
            {
                // An integer argument (BININT1/2/BININT) becomes a huge or negative one (BININT or LONG1).
                var positions = Enumerable.Range(0, data.Length).Where(i => data[i] is (byte)'K' or (byte)'M' or (byte)'J').ToList();
                if (positions.Count == 0) return (data, "no int");
                int p = positions[random.Next(positions.Count)];
                int width = data[p] switch { (byte)'K' => 1, (byte)'M' => 2, _ => 4 };
                long value = HugeInts[random.Next(HugeInts.Length)];
                byte[] replacement = value is >= int.MinValue and <= int.MaxValue
                    ? [(byte)'J', .. BitConverter.GetBytes((int)value)]
                    : [0x8a, 8, .. BitConverter.GetBytes(value)];
                int end = Math.Min(data.Length, p + 1 + width);
                return ([.. data.AsSpan(0, p), .. replacement, .. data.AsSpan(end)], $"int at {p} -> {value}");
            }
            case 1:
            {
                // A GLOBAL's module and name become another (allowed or not).
                var text = Encoding.Latin1.GetString(data);
                var globals = System.Text.RegularExpressions.Regex.Matches(text, @"c[\w.]+\n\w+\n");
                string replacement = Globals[random.Next(Globals.Length)];
                if (globals.Count == 0) return (data, "no global");
                var m = globals[random.Next(globals.Count)];
                return (Encoding.Latin1.GetBytes(text[..(m.Index + 1)] + replacement + text[(m.Index + m.Length)..]), $"global at {m.Index} -> {replacement.Replace('\n', '.')}");
            }
            case 2:
            {
                // A BINUNICODE length becomes huge or off by a little.
                var positions = Enumerable.Range(0, Math.Max(0, data.Length - 4)).Where(i => data[i] == (byte)'X').ToList();
                if (positions.Count == 0) return (data, "no string");
                int p = positions[random.Next(positions.Count)];
                uint old = BitConverter.ToUInt32(data, p + 1);
                uint value = random.Next(2) == 0 ? (uint)HugeInts[random.Next(HugeInts.Length)] : old + (uint)random.Next(-3, 4);
                var copy = (byte[])data.Clone();
                BitConverter.TryWriteBytes(copy.AsSpan(p + 1, 4), value);
                return (copy, $"string length at {p}: {old} -> {value}");
            }
            case 3:
            {
                // Deep or wide structure: many MARKs, empty lists, tuples or DUPs.
                byte[][] units = [[(byte)'('], [(byte)']'], [(byte)']', (byte)'q', 1], [(byte)')', 0x85], [(byte)'}', (byte)'2'], [(byte)'N', (byte)'2']];
                byte[] unit = units[random.Next(units.Length)];
                int times = random.Next(2) == 0 ? 1 + random.Next(100) : 10_000 + random.Next(200_000);
                return (Insert(data, at, Enumerable.Repeat(unit, times).SelectMany(b => b).ToArray()), $"{times} x {Convert.ToHexString(unit)} at {at}");
            }
            case 4:
            {
                // A memo read (BINGET/LONG_BINGET) of another index.
                var positions = Enumerable.Range(0, Math.Max(0, data.Length - 1)).Where(i => data[i] is (byte)'h' or (byte)'q').ToList();
                if (positions.Count == 0) return (data, "no memo");
                int p = positions[random.Next(positions.Count)];
                var copy = (byte[])data.Clone();
                copy[p + 1] = (byte)random.Next(256);
                return (copy, $"memo index at {p} -> {copy[p + 1]}");
            }
            case 5:
            {
                // A random opcode with random argument bytes.
                var bytes = new byte[1 + random.Next(9)];
                random.NextBytes(bytes);
                bytes[0] = PickleOpcodes[random.Next(PickleOpcodes.Length)];
                return (Insert(data, at, bytes), $"insert opcode {Convert.ToHexString(bytes)} at {at}");
            }
            case 6:
            {
                var copy = (byte[])data.Clone();
                int flips = 1 + random.Next(4);
                for (int f = 0; f < flips && copy.Length > 0; f++) copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
                return (copy, $"flip {flips} bits");
            }
            default:
            {
                int length = Math.Min(data.Length - Math.Min(at, data.Length), 1 + random.Next(32));
                return random.Next(2) == 0 ? ([.. data.AsSpan(0, at), .. data.AsSpan(at + length)], $"delete {length} at {at}") : (data[..at], $"truncate at {at}");
            }
        }
    }

    private static byte[] Insert(byte[] data, int at, byte[] bytes) => [.. data.AsSpan(0, at), .. bytes, .. data.AsSpan(at)];

    private static byte[] ReplaceAll(byte[] data, byte[] from, byte[] to) =>
        Encoding.Latin1.GetBytes(Encoding.Latin1.GetString(data).Replace(Encoding.Latin1.GetString(from), Encoding.Latin1.GetString(to), StringComparison.Ordinal));

    // JSON-aware mutations on the text (Latin-1 round trip keeps every byte).
    private static byte[] JsonMutation(byte[] data, Random random, out string label)
    {
        string text = Encoding.Latin1.GetString(data);
        switch (random.Next(5))
        {
            case 0:
            {
                // Replace a number (or the value after a colon) with NaN, Inf, a huge or negative value.
                var numbers = System.Text.RegularExpressions.Regex.Matches(text, @"(?<=[:\[,]\s*)-?\d[\d.eE+-]*");
                string value = JsonNumbers[random.Next(JsonNumbers.Length)];
                if (numbers.Count == 0) { label = "no number"; return data; }
                var m = numbers[random.Next(numbers.Count)];
                label = $"number at {m.Index} -> {value}";
                return Encoding.Latin1.GetBytes(text[..m.Index] + value + text[(m.Index + m.Length)..]);
            }
            case 1:
            {
                // Deep nesting in place of a value.
                int depth = random.Next(2) == 0 ? 64 + random.Next(64) : 1000 + random.Next(100_000);
                char open = random.Next(2) == 0 ? '[' : '{';
                string nested = open == '[' ? new string('[', depth) + new string(']', depth) : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth);
                int colon = FindRandom(text, ':', random);
                label = $"nesting {depth} at {colon}";
                if (colon < 0) return Encoding.Latin1.GetBytes(nested);
                int end = colon + 1;
                while (end < text.Length && text[end] is not (',' or '}' or ']')) end++;
                return Encoding.Latin1.GetBytes(text[..(colon + 1)] + nested + text[end..]);
            }
            case 2:
            {
                // Change the type of a value: string ↔ number ↔ array ↔ object ↔ null.
                int colon = FindRandom(text, ':', random);
                string value = new[] { "null", "1", "\"x\"", "[]", "{}", "true", "[1,2]", "\"\"", "-5" }[random.Next(9)];
                label = $"value at {colon} -> {value}";
                if (colon < 0) return data;
                int end = colon + 1;
                int nesting = 0;
                while (end < text.Length && !(nesting == 0 && text[end] is ',' or '}' or ']'))
                {
                    if (text[end] is '[' or '{') nesting++;
                    else if (text[end] is ']' or '}') nesting--;
                    end++;
                }
                return Encoding.Latin1.GetBytes(text[..(colon + 1)] + value + text[end..]);
            }
            case 3:
            {
                // Duplicate an object member, or drop one.
                int comma = FindRandom(text, ',', random);
                label = $"member edit at {comma}";
                if (comma < 0) return data;
                int next = text.IndexOf(',', comma + 1);
                if (next < 0) return data;
                string member = text[comma..next];
                return Encoding.Latin1.GetBytes(random.Next(2) == 0 ? text[..comma] + member + text[comma..] : text[..comma] + text[next..]);
            }
            default:
            {
                // Escapes: lone surrogates, NUL, bad escapes inside a string.
                int quote = FindRandom(text, '"', random);
                string escape = new[] { "\\ud800", "\\udc00\\ud800", "\\u0000", "\\x", "\\", "\\uZZZZ", "\u0085", "\u2028" }[random.Next(8)];
                label = $"escape {escape} at {quote}";
                if (quote < 0) return data;
                return Encoding.Latin1.GetBytes(text[..(quote + 1)] + escape + text[(quote + 1)..]);
            }
        }
    }

    private static int FindRandom(string text, char c, Random random)
    {
        if (text.Length == 0) return -1;
        int index = text.IndexOf(c, random.Next(text.Length));
        return index >= 0 ? index : text.IndexOf(c, StringComparison.Ordinal);
    }

    private static readonly ulong[] HugeLengths =
        [0, 1, 7, 8, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 99_999_999, 100_000_001, long.MaxValue, ulong.MaxValue, (ulong)long.MaxValue + 1];

    // The 8-byte header length, or the JSON header (with the length fixed up or not), or a huge shape.
    private static (byte[], string) SafeTensorsMutation(byte[] data, Random random)
    {
        if (data.Length < 8) return (data, "too short");
        ulong headerLength = BitConverter.ToUInt64(data, 0);
        if (headerLength > (ulong)(data.Length - 8)) headerLength = (ulong)(data.Length - 8);
        int choice = random.Next(4);
        if (choice == 0)
        {
            ulong value = random.Next(3) == 0 ? headerLength + (ulong)random.Next(-4, 5) : HugeLengths[random.Next(HugeLengths.Length)];
            var copy = (byte[])data.Clone();
            BitConverter.TryWriteBytes(copy.AsSpan(0, 8), value);
            return (copy, $"header length -> {value}");
        }
        byte[] header = data.AsSpan(8, (int)headerLength).ToArray();
        byte[] body = data.AsSpan(8 + (int)headerLength).ToArray();
        string label;
        if (choice == 1)
        {
            // A shape whose element count overflows or is huge, keeping offsets.
            string text = Encoding.Latin1.GetString(header);
            var shapes = System.Text.RegularExpressions.Regex.Matches(text, @"""shape"":\s*\[[^\]]*\]");
            if (shapes.Count == 0) return (data, "no shape");
            var m = shapes[random.Next(shapes.Count)];
            string shape = new[] { "[4294967296,4294967296]", "[9223372036854775807,2]", "[-1]", "[3037000500,3037000500]", "[0,9223372036854775807]",
                "[1e3]", "[65536,65536,65536]", "[1.5]", "[\"2\"]", "[2147483648]", "[" + string.Join(",", Enumerable.Repeat("2", 70)) + "]" }[random.Next(11)];
            header = Encoding.Latin1.GetBytes(text[..m.Index] + "\"shape\":" + shape + text[(m.Index + m.Length)..]);
            label = $"shape -> {shape}";
        }
        else if (choice == 2)
        {
            // Offsets far past the file.
            string text = Encoding.Latin1.GetString(header);
            var offsets = System.Text.RegularExpressions.Regex.Matches(text, @"""data_offsets"":\s*\[[^\]]*\]");
            if (offsets.Count == 0) return (data, "no offsets");
            var m = offsets[random.Next(offsets.Count)];
            string value = new[] { "[0,9223372036854775807]", "[9223372036854775800,9223372036854775807]", "[-8,0]", "[0,4294967296]", "[5,3]", "[0]", "[0,1,2]" }[random.Next(7)];
            header = Encoding.Latin1.GetBytes(text[..m.Index] + "\"data_offsets\":" + value + text[(m.Index + m.Length)..]);
            label = $"data_offsets -> {value}";
        }
        else
        {
            header = JsonMutation(header, random, out string inner);
            label = "header " + inner;
        }
        bool fixLength = random.Next(4) > 0;
        var length = BitConverter.GetBytes(fixLength ? (ulong)header.Length : headerLength);
        return ([.. length, .. header, .. body], label + (fixLength ? "" : " (old length)"));
    }

    // Rewrites one length prefix of a (nested) length-delimited protobuf field.
    private static (byte[], string) ProtobufMutation(byte[] data, Random random)
    {
        var lengths = new List<(int At, int Size, ulong Value)>();
        FindLengths(data, 0, data.Length, 0, lengths);
        if (lengths.Count == 0) return (data, "no length field");
        var (at, size, old) = lengths[random.Next(lengths.Count)];
        ulong value = random.Next(3) switch
        {
            0 => HugeLengths[random.Next(HugeLengths.Length)],
            1 => old + (ulong)random.Next(1, 16),
            _ => old - Math.Min(old, (ulong)random.Next(1, 16)),
        };
        var varint = new List<byte>();
        ulong v = value;
        do { varint.Add((byte)((v & 0x7F) | (v > 0x7F ? 0x80u : 0))); v >>= 7; } while (v != 0);
        return ([.. data.AsSpan(0, at), .. varint, .. data.AsSpan(at + size)], $"protobuf length at {at}: {old} -> {value}");
    }

    private static void FindLengths(byte[] data, int start, int end, int depth, List<(int, int, ulong)> into)
    {
        int position = start;
        while (position < end && into.Count < 100_000)
        {
            if (!ReadVarint(data, ref position, end, out ulong tag)) return;
            switch ((int)(tag & 7))
            {
                case 0: if (!ReadVarint(data, ref position, end, out _)) return; break;
                case 1: position += 8; break;
                case 5: position += 4; break;
                case 2:
                    int at = position;
                    if (!ReadVarint(data, ref position, end, out ulong length) || length > (ulong)(end - position)) return;
                    into.Add((at, position - at, length));
                    if (depth < 8) FindLengths(data, position, position + (int)length, depth + 1, into);
                    position += (int)length;
                    break;
                default: return;
            }
        }
    }

    private static bool ReadVarint(byte[] data, ref int position, int end, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64 && position < end; shift += 7)
        {
            byte b = data[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return true;
        }
        return false;
    }
}
