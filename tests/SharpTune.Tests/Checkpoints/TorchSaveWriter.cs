using System.Buffers.Binary;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Checkpoints;

/// <summary>One tensor of a state dict as torch.save pickles it: a strided view of a (possibly shared) storage.</summary>
/// <param name="Key">The state dict key.</param>
/// <param name="StorageKey">The storage's key ("0", "1", …): its record is data/&lt;key&gt;.</param>
/// <param name="Offset">storage_offset, in elements.</param>
/// <param name="Size">The view's size.</param>
/// <param name="Stride">The view's stride, in elements.</param>
internal sealed record SavedTensor(string Key, string StorageKey, long Offset, long[] Size, long[] Stride);

/// <summary>
/// Test-only writer of what <c>torch.save(model.state_dict(), "pytorch_model.bin")</c> writes (PyTorch ≥ 1.6, pickle
/// protocol 2), written from PyTorch's torch/serialization.py and caffe2/serialize/inline_container.cc and CPython's
/// pickle.py: a zip archive (records stored uncompressed, each data start padded to 64 bytes with an "FB" extra field,
/// zip64 end records, as miniz writes with MZ_ZIP_FLAG_WRITE_ZIP64) whose records sit in a folder named after the file:
/// data.pkl, byteorder, data/&lt;key&gt; in sorted order, version and .data/serialization_id. The pickle is what
/// CPython's Pickler emits: an OrderedDict reduced from <c>collections.OrderedDict()</c>, its items in SETITEMS batches
/// of 1000, each tensor <c>torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())</c> with
/// the storage as persistent id <c>('storage', torch.FloatStorage, key, 'cpu', numel)</c>, strings and globals memoized
/// (BINPUT/BINGET), and the state dict's <c>_metadata</c> attribute set with BUILD.
/// </summary>
internal static class TorchSaveWriter
{
    private static readonly Dictionary<ScalarType, string> StorageTypes = new()
    {
        [ScalarType.Float32] = "FloatStorage", [ScalarType.Float64] = "DoubleStorage", [ScalarType.Float16] = "HalfStorage",
        [ScalarType.BFloat16] = "BFloat16Storage", [ScalarType.Int64] = "LongStorage", [ScalarType.Int32] = "IntStorage",
        [ScalarType.Int16] = "ShortStorage", [ScalarType.Int8] = "CharStorage", [ScalarType.Byte] = "ByteStorage",
        [ScalarType.Bool] = "BoolStorage",
    };

    /// <summary>Saves each tensor with a storage of its own, contiguous, keys in the given order (as a state dict is).</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, string byteOrder = "little")
    {
        var storages = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var saved = new List<SavedTensor>();
        foreach (var (key, tensor) in tensors)
        {
            string storageKey = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            storages.Add(storageKey, tensor.contiguous().flatten());
            saved.Add(new SavedTensor(key, storageKey, 0, tensor.shape, Contiguous(tensor.shape)));
        }
        Save(path, saved, storages, byteOrder);
    }

    /// <summary>
    /// The seed of the fuzz kind "pickle" (fuzz/seeds/pickle/pytorch_model.bin): fixed values of every storage form the
    /// reader handles — contiguous, transposed, two views of one storage at different offsets, fp16, bf16, int64,
    /// bool and a 0-d scalar.
    /// </summary>
    public static void SaveFuzzSeed(string path)
    {
        using var scope = torch.NewDisposeScope();
        var storages = new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            ["0"] = torch.arange(24, dtype: ScalarType.Float32),
            ["1"] = torch.arange(12, dtype: ScalarType.Float32) / 4,
            ["2"] = torch.arange(8, dtype: ScalarType.Float32) - 3,
            ["3"] = torch.arange(5, dtype: ScalarType.Float32).to_type(ScalarType.Float16),
            ["4"] = torch.arange(5, dtype: ScalarType.Float32).to_type(ScalarType.BFloat16),
            ["5"] = torch.arange(8, dtype: ScalarType.Int64),
            ["6"] = torch.tensor(new[] { true, false, true }),
            ["7"] = torch.tensor(new[] { 0.5f }),
        };
        Save(path,
        [
            new("embeddings.weight", "0", 0, [6, 4], [4, 1]),
            new("dense.weight", "1", 0, [3, 4], [1, 3]),
            new("a.bias", "2", 0, [4], [1]),
            new("b.bias", "2", 4, [4], [1]),
            new("half", "3", 0, [5], [1]),
            new("bf16", "4", 0, [5], [1]),
            new("embeddings.position_ids", "5", 0, [1, 8], [8, 1]),
            new("mask", "6", 0, [3], [1]),
            new("scalar", "7", 0, [], []),
        ], storages);
    }

    /// <summary>The strides of a contiguous tensor of <paramref name="shape"/>.</summary>
    public static long[] Contiguous(long[] shape)
    {
        var stride = new long[shape.Length];
        long step = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            stride[i] = step;
            step *= Math.Max(1, shape[i]);
        }
        return stride;
    }

    /// <summary>Saves views of the given storages (1-D tensors); <paramref name="byteOrder"/> "big" byte-swaps the records.</summary>
    public static void Save(string path, IReadOnlyList<SavedTensor> tensors, IReadOnlyDictionary<string, Tensor> storages, string byteOrder = "little")
    {
        var records = new List<(string Name, byte[] Data)>
        {
            ("data.pkl", Pickle(tensors, storages)),
            ("byteorder", Encoding.ASCII.GetBytes(byteOrder)),
        };
        // torch writes the storages in sorted(keys) order: string order, so "10" before "2".
        foreach (var key in storages.Keys.Order(StringComparer.Ordinal))
        {
            using var cpu = storages[key].contiguous();
            byte[] bytes = cpu.numel() == 0 ? [] : cpu.bytes.ToArray();
            int size = (int)cpu.ElementSize;
            if (byteOrder == "big")
                for (int i = 0; i < bytes.Length; i += size) Array.Reverse(bytes, i, size);
            records.Add(($"data/{key}", bytes));
        }
        records.Add(("version", "3\n"u8.ToArray()));
        records.Add((".data/serialization_id", "1234567890123456789012345678901234567890"u8.ToArray()));
        File.WriteAllBytes(path, Zip(Path.GetFileNameWithoutExtension(path), records));
    }

    // ---- the pickle (protocol 2, as CPython's Pickler writes it) ------------------------------------------------

    /// <summary>The data.pkl of a state dict.</summary>
    public static byte[] Pickle(IReadOnlyList<SavedTensor> tensors, IReadOnlyDictionary<string, Tensor> storages)
    {
        var p = new PickleWriter();
        p.Proto();
        p.Global("collections", "OrderedDict");
        p.EmptyTuple();
        p.Reduce();
        p.Batched(tensors, tensor =>
        {
            p.String(tensor.Key);
            p.Global("torch._utils", "_rebuild_tensor_v2");
            p.Mark();
            // persistent_id(storage) = ('storage', storage_type, key, location, numel), saved then BINPERSID.
            var storage = storages[tensor.StorageKey];
            p.Mark();
            p.String("storage");
            p.Global("torch", StorageTypes[storage.dtype]);
            p.String(tensor.StorageKey);
            p.String("cpu");
            p.Int(storage.numel());
            p.Tuple(5);
            p.PersistentId();
            p.Int(tensor.Offset);
            p.IntTuple(tensor.Size);
            p.IntTuple(tensor.Stride);
            p.Bool(false);
            p.Global("collections", "OrderedDict");
            p.EmptyTuple();
            p.Reduce(); // backward_hooks = OrderedDict()
            p.Tuple(6);
            p.Reduce();
        });
        // state_dict() sets _metadata = OrderedDict({'': {'version': 1}, …}); OrderedDict.__reduce__ passes it as state → BUILD.
        p.EmptyDict();
        p.String("_metadata");
        p.Global("collections", "OrderedDict");
        p.EmptyTuple();
        p.Reduce();
        string[] modules = ["", "embeddings", "encoder"];
        p.Batched(modules, module =>
        {
            p.String(module);
            p.EmptyDict();
            p.String("version");
            p.Int(1);
            p.SetItem();
        });
        p.SetItem();
        p.Build();
        p.Stop();
        return p.ToArray();
    }

    /// <summary>The opcodes of CPython's pickle.py at protocol 2, with its memo (strings and globals by value).</summary>
    internal sealed class PickleWriter
    {
        private readonly MemoryStream _out = new();
        private readonly Dictionary<string, int> _memo = new(StringComparer.Ordinal);
        private int _next;

        public byte[] ToArray() => _out.ToArray();
        public void Raw(params byte[] bytes) => _out.Write(bytes);
        public void Proto() => Raw(0x80, 2);
        public void Stop() => Raw((byte)'.');
        public void Mark() => Raw((byte)'(');
        public void EmptyTuple() => Raw((byte)')');
        public void EmptyDict() { Raw((byte)'}'); Put(); }
        public void Reduce() { Raw((byte)'R'); Put(); }
        public void Build() => Raw((byte)'b');
        public void SetItem() => Raw((byte)'s');
        public void PersistentId() => Raw((byte)'Q');
        public void Bool(bool value) => Raw(value ? (byte)0x88 : (byte)0x89);

        /// <summary>TUPLE1-3 for short tuples, MARK … TUPLE otherwise (the MARK written by the caller); then memoized.</summary>
        public void Tuple(int count)
        {
            Raw(count switch { 1 => 0x85, 2 => 0x86, 3 => 0x87, _ => (byte)'t' });
            Put();
        }

        public void IntTuple(long[] values)
        {
            if (values.Length == 0) { EmptyTuple(); return; }
            if (values.Length > 3) Mark();
            foreach (long v in values) Int(v);
            Tuple(values.Length);
        }

        public void Int(long value)
        {
            if (value is >= 0 and <= 0xff) Raw((byte)'K', (byte)value);
            else if (value is >= 0 and <= 0xffff) { Raw((byte)'M'); Raw(BitConverter.GetBytes((ushort)value)); }
            else if (value is >= int.MinValue and <= int.MaxValue) { Raw((byte)'J'); Raw(BitConverter.GetBytes((int)value)); }
            else
            {
                // LONG1: the shortest little-endian two's complement.
                var bytes = new List<byte>(BitConverter.GetBytes(value));
                while (bytes.Count > 1 && ((bytes[^1] == 0 && bytes[^2] < 0x80) || (bytes[^1] == 0xff && bytes[^2] >= 0x80))) bytes.RemoveAt(bytes.Count - 1);
                Raw(0x8a, (byte)bytes.Count);
                Raw([.. bytes]);
            }
        }

        public void String(string value)
        {
            if (Get("s:" + value)) return;
            byte[] utf8 = Encoding.UTF8.GetBytes(value);
            Raw((byte)'X');
            Raw(BitConverter.GetBytes((uint)utf8.Length));
            Raw(utf8);
            Put("s:" + value);
        }

        public void Global(string module, string name)
        {
            if (Get($"g:{module}.{name}")) return;
            Raw((byte)'c');
            Raw(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
            Put($"g:{module}.{name}");
        }

        /// <summary>CPython's _batch_setitems: batches of 1000, MARK … SETITEMS, or one SETITEM for a batch of one.</summary>
        public void Batched<T>(IReadOnlyList<T> items, Action<T> writePair)
        {
            for (int start = 0; start < items.Count; start += 1000)
            {
                int count = Math.Min(1000, items.Count - start);
                if (count > 1) Mark();
                for (int i = start; i < start + count; i++) writePair(items[i]);
                Raw(count > 1 ? (byte)'u' : (byte)'s');
            }
        }

        private bool Get(string key)
        {
            if (!_memo.TryGetValue(key, out int index)) return false;
            if (index < 256) Raw((byte)'h', (byte)index);
            else { Raw((byte)'j'); Raw(BitConverter.GetBytes(index)); }
            return true;
        }

        private void Put(string? key = null)
        {
            int index = _next++;
            if (key is not null) _memo[key] = index;
            if (index < 256) Raw((byte)'q', (byte)index);
            else { Raw((byte)'r'); Raw(BitConverter.GetBytes(index)); }
        }
    }

    // ---- the zip container (PyTorchStreamWriter over miniz) --------------------------------------------------------

    /// <summary>Stored records under <paramref name="archiveName"/>/, data 64-byte aligned, zip64 end records.</summary>
    public static byte[] Zip(string archiveName, IReadOnlyList<(string Name, byte[] Data)> records)
    {
        var output = new MemoryStream();
        var central = new MemoryStream();
        const ushort dosTime = 0, dosDate = (0 << 9) | (1 << 5) | 1; // 1980-01-01
        foreach (var (name, data) in records)
        {
            byte[] fullName = Encoding.ASCII.GetBytes($"{archiveName}/{name}");
            long offset = output.Position;
            // The "FB" extra field pads the header so that the data starts on a 64-byte boundary.
            long start = offset + 30 + fullName.Length + 4;
            int padding = (int)((64 - start % 64) % 64);
            byte[] extra = [(byte)'F', (byte)'B', (byte)padding, (byte)(padding >> 8), .. Enumerable.Repeat((byte)'Z', padding)];
            uint crc = Crc32(data);
            var w = new BinaryWriter(output);
            w.Write(0x04034b50u); w.Write((ushort)0); w.Write((ushort)0); w.Write((ushort)0);
            w.Write(dosTime); w.Write(dosDate); w.Write(crc); w.Write((uint)data.Length); w.Write((uint)data.Length);
            w.Write((ushort)fullName.Length); w.Write((ushort)extra.Length); w.Write(fullName); w.Write(extra); w.Write(data);
            var c = new BinaryWriter(central);
            c.Write(0x02014b50u); c.Write((ushort)0); c.Write((ushort)0); c.Write((ushort)0); c.Write((ushort)0);
            c.Write(dosTime); c.Write(dosDate); c.Write(crc); c.Write((uint)data.Length); c.Write((uint)data.Length);
            c.Write((ushort)fullName.Length); c.Write((ushort)0); c.Write((ushort)0); c.Write((ushort)0); c.Write((ushort)0);
            c.Write(0u); c.Write((uint)offset); c.Write(fullName);
        }
        long centralOffset = output.Position;
        output.Write(central.ToArray());
        long zip64Offset = output.Position;
        var e = new BinaryWriter(output);
        // zip64 end of central directory record and locator, then the classic end record.
        e.Write(0x06064b50u); e.Write(44UL); e.Write((ushort)0x2d); e.Write((ushort)0x2d); e.Write(0u); e.Write(0u);
        e.Write((ulong)records.Count); e.Write((ulong)records.Count); e.Write((ulong)central.Length); e.Write((ulong)centralOffset);
        e.Write(0x07064b50u); e.Write(0u); e.Write((ulong)zip64Offset); e.Write(1u);
        e.Write(0x06054b50u); e.Write((ushort)0); e.Write((ushort)0); e.Write((ushort)records.Count); e.Write((ushort)records.Count);
        e.Write((uint)central.Length); e.Write((uint)centralOffset); e.Write((ushort)0);
        return output.ToArray();
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>The zip CRC-32 (IEEE, reflected).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in data) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }

    /// <summary>Little-endian uint32, for hand-written pickles.</summary>
    public static byte[] U32(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        return bytes;
    }
}
