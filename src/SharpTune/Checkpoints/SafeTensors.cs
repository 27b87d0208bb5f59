using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Checkpoints;

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header
/// (<c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}</c>),
/// then the raw little-endian tensor bytes.
/// </summary>
public static class SafeTensors
{
    private static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>Loads every tensor of a safetensors file onto the CPU.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: file not found.");
        using var stream = File.OpenRead(path);
        long fileLength = stream.Length;
        if (fileLength < 8) throw new SharpTuneException($"{path}: truncated safetensors file ({fileLength} bytes, the header length alone takes 8).");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw new SharpTuneException($"{path}: header length {headerLength} runs past the end of the file ({fileLength} bytes); the file is truncated or not safetensors.");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        JsonObject header;
        try
        {
            header = JsonNode.Parse(headerBytes)?.AsObject() ?? throw new SharpTuneException($"{path}: header is JSON null.");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new SharpTuneException($"{path}: header is not a JSON object: {e.Message}", e);
        }

        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        var result = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (name, node) in header)
            {
                if (name == "__metadata__") continue;
                var (type, elementSize, shape, begin, end) = ParseEntry(path, name, node);
                if (begin < 0 || end < begin || end > dataLength)
                    throw new SharpTuneException($"{path}: tensor '{name}' has data_offsets [{begin}, {end}] outside the data section ({dataLength} bytes); the file is truncated or corrupt.");
                long count = shape.Aggregate(1L, (a, b) => a * b);
                if (count * elementSize != end - begin)
                    throw new SharpTuneException($"{path}: tensor '{name}' has shape [{string.Join(", ", shape)}] ({count * elementSize} bytes) but data_offsets span {end - begin} bytes.");
                var bytes = new byte[end - begin];
                stream.Position = dataStart + begin;
                stream.ReadExactly(bytes);
                var tensor = torch.empty(shape, type);
                if (count > 0) tensor.bytes = bytes;
                result[name] = tensor;
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>Writes tensors (any device, contiguous or not) to a safetensors file, atomically.</summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
            header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        var ordered = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var payloads = new List<byte[]>();
        foreach (var (name, tensor) in ordered)
        {
            string dtype = DTypes.First(kv => kv.Value.Type == tensor.dtype).Key;
            using var cpu = tensor.detach().cpu().contiguous();
            byte[] bytes = cpu.numel() == 0 ? [] : cpu.bytes.ToArray();
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(tensor.shape.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes.Length),
            };
            offset += bytes.Length;
            payloads.Add(bytes);
        }
        byte[] headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padding = (8 - headerBytes.Length % 8) % 8; // keep tensor data 8-byte aligned, as the reference writer does
        string temp = path + ".tmp";
        using (var stream = File.Create(temp))
        {
            Span<byte> lengthBytes = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)(headerBytes.Length + padding));
            stream.Write(lengthBytes);
            stream.Write(headerBytes);
            for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
            foreach (var bytes in payloads) stream.Write(bytes);
        }
        File.Move(temp, path, overwrite: true);
    }

    private static (ScalarType Type, int Size, long[] Shape, long Begin, long End) ParseEntry(string path, string name, JsonNode? node)
    {
        try
        {
            var entry = node!.AsObject();
            string dtype = entry["dtype"]!.GetValue<string>();
            if (!DTypes.TryGetValue(dtype, out var type))
                throw new SharpTuneException($"{path}: tensor '{name}' has unknown dtype '{dtype}'; supported: {string.Join(", ", DTypes.Keys)}.");
            long[] shape = entry["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            if (shape.Any(d => d < 0)) throw new SharpTuneException($"{path}: tensor '{name}' has a negative dimension in shape [{string.Join(", ", shape)}].");
            var offsets = entry["data_offsets"]!.AsArray();
            if (offsets.Count != 2) throw new SharpTuneException($"{path}: tensor '{name}' data_offsets must have two entries.");
            return (type.Type, type.Size, shape, offsets[0]!.GetValue<long>(), offsets[1]!.GetValue<long>());
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new SharpTuneException($"{path}: tensor '{name}' has a malformed header entry (needs dtype, shape, data_offsets): {e.Message}", e);
        }
    }
}
