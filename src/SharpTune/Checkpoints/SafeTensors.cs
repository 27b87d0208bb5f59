using System.Buffers.Binary;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Checkpoints;

/// <summary>Where one tensor lives in a safetensors file, as its header describes it.</summary>
/// <param name="Name">The tensor's key.</param>
/// <param name="DType">The safetensors dtype name (F32, F16, BF16, I64…).</param>
/// <param name="Shape">The shape; empty for a 0-d scalar.</param>
/// <param name="Begin">First byte of the data, relative to the start of the data section.</param>
/// <param name="End">One past the last byte of the data, relative to the start of the data section.</param>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>Bytes of the tensor's data.</summary>
    public long ByteLength => End - Begin;
}

/// <summary>The validated header of a safetensors file: its tensors in file order and its free-form metadata.</summary>
/// <param name="Path">The file the header was read from.</param>
/// <param name="Tensors">Every tensor, ordered by data offset (the order of the bytes in the file).</param>
/// <param name="Metadata">The <c>__metadata__</c> string map (empty when absent).</param>
/// <param name="DataStart">File offset of the data section (8 + header length).</param>
public sealed record SafeTensorsHeader(string Path, IReadOnlyList<SafeTensorInfo> Tensors,
    IReadOnlyDictionary<string, string> Metadata, long DataStart)
{
    /// <summary>The tensor names, in file order.</summary>
    public IEnumerable<string> Names => Tensors.Select(t => t.Name);
}

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header
/// (<c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}</c>),
/// then the raw little-endian tensor bytes.
/// </summary>
/// <remarks>
/// Reading validates the file the way the reference Rust reader (the <c>safetensors</c> crate) does before
/// touching libtorch, so a corrupt file is a <see cref="SharpTuneException"/> naming the file and tensor,
/// never a native crash: the header length fits in the file (and under 100 MB); the header is a UTF-8 JSON
/// object; every entry has a known dtype, non-negative dims and two integer offsets; sorted by offset,
/// the tensors' data is contiguous from byte 0, non-overlapping, each span matches shape × dtype size, and the
/// last one ends exactly at the end of the file. Duplicate keys are rejected too (the reference would keep
/// the last one silently).
/// </remarks>
public static class SafeTensors
{
    /// <summary>The reference reader refuses headers larger than this (it guards against absurd allocations).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>The safetensors dtype names this reader and writer support.</summary>
    public static IReadOnlyCollection<string> SupportedDTypes => DTypes.Keys;

    /// <summary>Loads every tensor of a safetensors file onto the CPU (keys in file order).</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        using var stream = OpenRead(path);
        var header = ReadHeader(stream, path);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            stream.Position = header.DataStart;
            foreach (var info in header.Tensors)
            {
                // Entries are contiguous and in file order, so the stream is read front to back once;
                // only one tensor's bytes are held outside libtorch at a time.
                var bytes = new byte[info.ByteLength];
                stream.ReadExactly(bytes);
                var tensor = torch.empty(info.Shape, DTypes[info.DType].Type);
                if (bytes.Length > 0) tensor.bytes = bytes;
                result.Add(info.Name, tensor);
            }
        }
        catch (Exception e) when (e is IOException)
        {
            foreach (var t in result.Values) t.Dispose();
            throw new SharpTuneException($"{path}: could not read tensor data: {e.Message}", e);
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>Reads and validates the header of a safetensors file without loading any tensor.</summary>
    public static SafeTensorsHeader ReadHeader(string path)
    {
        using var stream = OpenRead(path);
        return ReadHeader(stream, path);
    }

    /// <summary>Reads the <c>__metadata__</c> string map of a safetensors file (empty when it has none).</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path) => ReadHeader(path).Metadata;

    /// <summary>
    /// Writes tensors (any device, contiguous or not) to a safetensors file, atomically (a temporary file
    /// renamed over <paramref name="path"/>). Keys are written in ordinal order; the header is padded with
    /// spaces so that the data starts 8-byte aligned, as the reference writer does.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var ordered = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var entries = new List<(string Name, string DType, long[] Shape, long Bytes)>();
        foreach (var (name, tensor) in ordered)
        {
            if (name.Length == 0 || name == MetadataKey)
                throw new SharpTuneException($"{path}: cannot save a tensor named '{name}' (reserved or empty).");
            var dtype = DTypes.FirstOrDefault(kv => kv.Value.Type == tensor.dtype).Key
                ?? throw new SharpTuneException($"{path}: tensor '{name}' has dtype {tensor.dtype}, which safetensors (as supported here) cannot store; supported: {string.Join(", ", DTypes.Keys)}.");
            entries.Add((name, dtype, tensor.shape, tensor.numel() * DTypes[dtype].Size));
        }

        byte[] headerBytes = BuildHeader(entries, metadata);
        try
        {
            AtomicFile.WriteStream(path, stream =>
            {
                Span<byte> lengthBytes = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)headerBytes.Length);
                stream.Write(lengthBytes);
                stream.Write(headerBytes);
                // One tensor at a time, so the whole file is never assembled in memory.
                foreach (var (_, tensor) in ordered)
                {
                    if (tensor.numel() == 0) continue;
                    using var cpu = tensor.detach().cpu().contiguous();
                    stream.Write(cpu.bytes);
                }
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SharpTuneException($"{path}: could not write safetensors file: {e.Message}", e);
        }
    }

    /// <summary>The header JSON (padded with spaces to a multiple of 8 bytes) for the given entries, in order.</summary>
    internal static byte[] BuildHeader(List<(string Name, string DType, long[] Shape, long Bytes)> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, dtype, shape, bytes) in entries)
            {
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype);
                json.WriteStartArray("shape");
                foreach (var d in shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        int padding = (int)((8 - buffer.Length % 8) % 8);
        for (int i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static FileStream OpenRead(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: file not found.");
        try
        {
            return File.OpenRead(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SharpTuneException($"{path}: cannot open: {e.Message}", e);
        }
    }

    private static SafeTensorsHeader ReadHeader(FileStream stream, string path)
    {
        long fileLength = stream.Length;
        if (fileLength < 8)
            throw new SharpTuneException($"{path}: truncated safetensors file ({fileLength} bytes; the header length alone takes 8).");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.Position = 0;
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw new SharpTuneException($"{path}: header length {headerLength} runs past the end of the file ({fileLength} bytes); the file is truncated or not safetensors.");
        if (headerLength > MaxHeaderBytes)
            throw new SharpTuneException($"{path}: header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit of the safetensors format.");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;

        if (headerBytes.Length == 0 || headerBytes[0] != (byte)'{')
            throw new SharpTuneException($"{path}: header does not start with '{{'; not a safetensors file.");
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes))
            throw new SharpTuneException($"{path}: header is not valid UTF-8; the file is corrupt or not safetensors.");
        JsonDocument document;
        try
        {
            StrictJson.CheckEscapes(headerBytes);
            document = JsonDocument.Parse(headerBytes);
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{path}: header is not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine}): {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new SharpTuneException($"{path}: header must be a JSON object, got {document.RootElement.ValueKind}.");
            var tensors = new List<SafeTensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new SharpTuneException($"{path}: header has the key '{property.Name}' twice.");
                if (property.Name == MetadataKey) ReadMetadataEntry(path, property.Value, metadata);
                else tensors.Add(ParseEntry(path, property.Name, property.Value));
            }
            ValidateLayout(path, tensors, dataLength);
            tensors.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
            return new SafeTensorsHeader(path, tensors, metadata, dataStart);
        }
    }

    private static void ReadMetadataEntry(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SharpTuneException($"{path}: {MetadataKey} must be a JSON object of strings, got {value.ValueKind}.");
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw new SharpTuneException($"{path}: {MetadataKey}.{item.Name} must be a string, got {item.Value.ValueKind}.");
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                throw new SharpTuneException($"{path}: {MetadataKey} has the key '{item.Name}' twice.");
        }
    }

    /// <summary>
    /// The checks of the reference reader: sorted by offset, tensors start at 0, follow each other without
    /// gap or overlap, each covers exactly shape × dtype size bytes, and the last one ends at the end of the file.
    /// </summary>
    private static void ValidateLayout(string path, List<SafeTensorInfo> tensors, long dataLength)
    {
        long expected = 0;
        foreach (var info in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (info.End < info.Begin)
                throw new SharpTuneException($"{path}: tensor '{info.Name}' has data_offsets [{info.Begin}, {info.End}] with end before begin.");
            if (info.End > dataLength)
                throw new SharpTuneException($"{path}: tensor '{info.Name}' has data_offsets [{info.Begin}, {info.End}] past the end of the data section ({dataLength} bytes); the file is truncated or corrupt.");
            if (info.Begin != expected)
                throw new SharpTuneException($"{path}: tensor '{info.Name}' has data_offsets [{info.Begin}, {info.End}] but the previous tensor ends at {expected}; safetensors requires contiguous, non-overlapping tensor data.");
            long count;
            try
            {
                count = info.Shape.Aggregate(1L, (a, b) => checked(a * b));
                count = checked(count * DTypes[info.DType].Size);
            }
            catch (OverflowException)
            {
                throw new SharpTuneException($"{path}: tensor '{info.Name}' has shape [{string.Join(", ", info.Shape)}] whose size overflows.");
            }
            if (count != info.ByteLength)
                throw new SharpTuneException($"{path}: tensor '{info.Name}' has dtype {info.DType} and shape [{string.Join(", ", info.Shape)}] ({count} bytes) but data_offsets [{info.Begin}, {info.End}] span {info.ByteLength} bytes.");
            expected = info.End;
        }
        if (expected != dataLength)
            throw new SharpTuneException($"{path}: the tensors cover {expected} bytes but the data section has {dataLength}; the file has trailing or missing bytes.");
    }

    private static SafeTensorInfo ParseEntry(string path, string name, JsonElement entry)
    {
        string Where() => $"{path}: tensor '{name}'";
        if (entry.ValueKind != JsonValueKind.Object)
            throw new SharpTuneException($"{Where()}: header entry must be an object with dtype, shape and data_offsets, got {entry.ValueKind}.");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new SharpTuneException($"{Where()}: header entry needs a string \"dtype\".");
        string dtype = dtypeElement.GetString()!;
        if (!DTypes.ContainsKey(dtype))
            throw new SharpTuneException($"{Where()}: unknown or unsupported dtype '{dtype}'; supported: {string.Join(", ", DTypes.Keys)}.");
        long[] shape = ReadIntegers(entry, "shape", Where);
        long[] offsets = ReadIntegers(entry, "data_offsets", Where);
        if (offsets.Length != 2)
            throw new SharpTuneException($"{Where()}: data_offsets must have two entries, got {offsets.Length}.");
        return new SafeTensorInfo(name, dtype, shape, offsets[0], offsets[1]);
    }

    private static long[] ReadIntegers(JsonElement entry, string field, Func<string> where)
    {
        if (!entry.TryGetProperty(field, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new SharpTuneException($"{where()}: header entry needs an array \"{field}\".");
        var values = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long value) || value < 0)
                throw new SharpTuneException($"{where()}: {field}[{i}] must be a non-negative integer, got {item.GetRawText()}.");
            values[i++] = value;
        }
        return values;
    }
}
