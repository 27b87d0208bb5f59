using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Checkpoints;

/// <summary>
/// Reads the state dict of a <c>pytorch_model.bin</c> (what <c>torch.save</c> writes since PyTorch 1.6) without
/// running any code. The file is a zip archive whose records sit in one folder: <c>data.pkl</c> (a pickle of an
/// OrderedDict key → tensor), <c>data/&lt;key&gt;</c> (each storage's raw bytes), <c>byteorder</c> (optional,
/// <c>little</c> or <c>big</c>) and <c>version</c>. Each tensor is pickled as
/// <c>torch._utils._rebuild_tensor_v2(persistent_load(('storage', torch.FloatStorage, key, location, numel)), offset, size, stride, requires_grad, hooks)</c>.
/// </summary>
/// <remarks>
/// The pickle is interpreted by <see cref="RestrictedUnpickler"/>, which accepts only the allow-listed globals
/// (<c>collections.OrderedDict</c>, the <c>torch._utils</c> tensor and parameter rebuild functions and the storage
/// types): any other — <c>posix.system</c>, <c>builtins.eval</c> — is refused with an error naming the file and the
/// global. Every record's CRC-32 is checked, as torch.load does. Nothing is allocated from an untrusted size before it is checked: records may not be larger than the file,
/// together the storages read may not exceed it, a storage's <c>numel × element size</c> must equal its record's size,
/// and every view (offset, size, stride) must lie inside its storage. Tensors are views of their storage with the
/// pickled offset, size and stride (tensors that shared a storage in Python share it here too).
/// </remarks>
public static class PickleCheckpoint
{
    /// <summary>The name Hugging Face gives the single-file checkpoint.</summary>
    public const string FileName = "pytorch_model.bin";

    /// <summary>The name of the sharded checkpoint's index (same layout as <see cref="SafeTensorsIndex"/>).</summary>
    public const string IndexFileName = "pytorch_model.bin.index.json";

    /// <summary>The pickle of a state dict is small; this bounds the bytes read for it.</summary>
    public const long MaxPickleBytes = 100_000_000;

    /// <summary>The most dimensions a tensor may have.</summary>
    public const int MaxDimensions = 64;

    /// <summary>
    /// Loads every tensor of a torch.save zip checkpoint onto the CPU, keys in file order. The caller owns the tensors.
    /// </summary>
    /// <exception cref="SharpTuneException">The file is missing, not a torch.save zip archive, names a global outside
    /// the allow-list, or is truncated or inconsistent; the message names the file and what is wrong.</exception>
    public static Dictionary<string, Tensor> Load(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: file not found.");
        using var stream = OpenRead(path);
        using var zip = OpenZip(stream, path);
        var archive = new Archive(path, zip, stream.Length);

        byte[] pickle = archive.Read("data.pkl", MaxPickleBytes);
        bool bigEndian = archive.ByteOrderIsBig();
        var storages = new Dictionary<string, StorageRef>(StringComparer.Ordinal);
        StorageRef Check(StorageRef storage)
        {
            if (storages.TryGetValue(storage.Key, out var seen))
            {
                if (seen.DType != storage.DType || seen.Numel != storage.Numel)
                    throw new SharpTuneException($"{path}: storage '{storage.Key}' is referred to as {seen.TypeName} of {seen.Numel} and as {storage.TypeName} of {storage.Numel}.");
                return seen;
            }
            long expected;
            try
            {
                expected = checked(storage.Numel * storage.ElementSize);
            }
            catch (OverflowException)
            {
                throw new SharpTuneException($"{path}: storage '{storage.Key}' claims {storage.Numel} elements, which overflows.");
            }
            long actual = archive.Length("data/" + storage.Key);
            if (actual != expected)
                throw new SharpTuneException($"{path}: storage '{storage.Key}' is {storage.TypeName} of {storage.Numel} elements ({expected} bytes) but its record data/{storage.Key} has {actual} bytes.");
            storages.Add(storage.Key, storage);
            return storage;
        }
        object? root = new RestrictedUnpickler(path, pickle, Check).Load();
        var entries = StateDictEntries(root, path);

        var data = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, view) in entries)
            {
                CheckView(name, view, path);
                if (!data.TryGetValue(view.Storage.Key, out var storage))
                    data.Add(view.Storage.Key, storage = ReadStorage(archive, view.Storage, bigEndian));
                result.Add(name, storage.as_strided(view.Size, view.Stride, view.Offset));
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        finally
        {
            // The views keep their storage alive; these handles are no longer needed.
            foreach (var t in data.Values) t.Dispose();
        }
        return result;
    }

    /// <summary>The top-level OrderedDict as (key, tensor) pairs; anything else is an error naming the key.</summary>
    private static List<(string Name, TensorRef View)> StateDictEntries(object? root, string path)
    {
        if (root is not PickleDict dict)
            throw new SharpTuneException($"{path}: data.pkl holds {RestrictedUnpickler.Describe(root)}, not a state dict (a dict of tensors).");
        var entries = new List<(string, TensorRef)>(dict.Items.Count);
        foreach (var (key, value) in dict.Items)
        {
            if (key is not string name)
                throw new SharpTuneException($"{path}: state dict key {RestrictedUnpickler.Describe(key)} is not a string.");
            if (value is not TensorRef view)
                throw new SharpTuneException($"{path}: state dict entry '{name}' is {RestrictedUnpickler.Describe(value)}, not a tensor.");
            entries.Add((name, view));
        }
        return entries;
    }

    /// <summary>The view must lie inside its storage: offset + Σ (size_i − 1)·stride_i &lt; numel.</summary>
    private static void CheckView(string name, TensorRef view, string path)
    {
        string Where() => $"{path}: tensor '{name}' (offset {view.Offset}, size [{string.Join(", ", view.Size)}], stride [{string.Join(", ", view.Stride)}], storage of {view.Storage.Numel})";
        if (view.Size.Length != view.Stride.Length) throw new SharpTuneException($"{Where()}: size and stride differ in length.");
        if (view.Size.Length > MaxDimensions) throw new SharpTuneException($"{Where()}: more than {MaxDimensions} dimensions.");
        if (view.Offset < 0 || view.Size.Any(s => s < 0) || view.Stride.Any(s => s < 0))
            throw new SharpTuneException($"{Where()}: offset, sizes and strides must be non-negative.");
        try
        {
            bool empty = view.Size.Any(s => s == 0);
            long last = view.Offset;
            if (!empty)
                for (int i = 0; i < view.Size.Length; i++) last = checked(last + (view.Size[i] - 1) * view.Stride[i]);
            if (empty ? view.Offset > view.Storage.Numel : last >= view.Storage.Numel)
                throw new SharpTuneException($"{Where()}: the view reaches element {last}, past the end of its storage.");
        }
        catch (OverflowException)
        {
            throw new SharpTuneException($"{Where()}: the view's extent overflows.");
        }
    }

    private static Tensor ReadStorage(Archive archive, StorageRef storage, bool bigEndian)
    {
        byte[] bytes = archive.Read("data/" + storage.Key, long.MaxValue);
        if (bigEndian && storage.ElementSize > 1)
            for (int i = 0; i < bytes.Length; i += storage.ElementSize) Array.Reverse(bytes, i, storage.ElementSize);
        var tensor = torch.empty([storage.Numel], storage.DType);
        if (bytes.Length > 0) tensor.bytes = bytes;
        return tensor;
    }

    private static FileStream OpenRead(string path)
    {
        try
        {
            return File.OpenRead(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SharpTuneException($"{path}: cannot open: {e.Message}", e);
        }
    }

    private static ZipArchive OpenZip(FileStream stream, string path)
    {
        Span<byte> start = stackalloc byte[4];
        int read = stream.ReadAtLeast(start, 4, throwOnEndOfStream: false);
        stream.Position = 0;
        if (read < 4 || !start.SequenceEqual("PK\x03\x04"u8))
        {
            // PyTorch < 1.6 wrote a sequence of pickles (starting with PROTO 2, LONG1 magic number) or a tar file.
            bool legacy = read >= 2 && start[0] == 0x80 && start[1] == 0x02;
            throw new SharpTuneException(legacy
                ? $"{path}: is in the legacy torch.save format of PyTorch < 1.6, which SharpTune does not read; re-save it with a current PyTorch (torch.save) or as safetensors."
                : $"{path}: not a torch.save zip archive (it does not start with a zip header).");
        }
        try
        {
            return new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException or NotSupportedException)
        {
            throw new SharpTuneException($"{path}: corrupt or truncated zip archive: {e.Message}", e);
        }
    }

    /// <summary>The records of one torch.save archive: every name is relative to the folder of its first record.</summary>
    private sealed class Archive
    {
        private readonly string _path;
        private readonly long _fileLength;
        private readonly string _prefix;
        private readonly Dictionary<string, ZipArchiveEntry> _entries = new(StringComparer.Ordinal);
        private long _bytesRead;

        public Archive(string path, ZipArchive zip, long fileLength)
        {
            _path = path;
            _fileLength = fileLength;
            IReadOnlyList<ZipArchiveEntry> all;
            try
            {
                all = zip.Entries;
            }
            catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException)
            {
                throw new SharpTuneException($"{path}: corrupt zip directory: {e.Message}", e);
            }
            if (all.Count == 0) throw new SharpTuneException($"{path}: the zip archive is empty.");
            int slash = all[0].FullName.IndexOf('/', StringComparison.Ordinal);
            if (slash <= 0) throw new SharpTuneException($"{path}: zip record '{all[0].FullName}' is not in a folder; not a torch.save archive.");
            _prefix = all[0].FullName[..(slash + 1)];
            foreach (var entry in all)
                if (!_entries.TryAdd(entry.FullName, entry))
                    throw new SharpTuneException($"{path}: the zip archive has the record '{entry.FullName}' twice.");
        }

        private ZipArchiveEntry Entry(string name) =>
            _entries.GetValueOrDefault(_prefix + name)
            ?? throw new SharpTuneException($"{_path}: the zip archive has no record {_prefix}{name}" +
                (name == "data.pkl" ? "; not a torch.save checkpoint." : "."));

        public long Length(string name) => Entry(name).Length;

        /// <summary>The byteorder record: little (also when absent, as torch.load assumes) or big.</summary>
        public bool ByteOrderIsBig()
        {
            if (!_entries.ContainsKey(_prefix + "byteorder")) return false;
            string order = Encoding.ASCII.GetString(Read("byteorder", 16));
            return order switch
            {
                "little" => false,
                "big" => true,
                _ => throw new SharpTuneException($"{_path}: record byteorder says '{order}'; expected little or big."),
            };
        }

        /// <summary>A record's bytes, after checking its size against the file (and <paramref name="limit"/>).</summary>
        public byte[] Read(string name, long limit)
        {
            var entry = Entry(name);
            long length = entry.Length;
            if (length > limit)
                throw new SharpTuneException($"{_path}: record {entry.FullName} has {length} bytes, more than the {limit} allowed.");
            if (length > _fileLength - _bytesRead)
                throw new SharpTuneException($"{_path}: record {entry.FullName} claims {length} bytes, more than the file holds ({_fileLength} bytes, {_bytesRead} already read); the archive is corrupt.");
            if (length > Array.MaxLength)
                throw new SharpTuneException($"{_path}: record {entry.FullName} has {length} bytes; records over {Array.MaxLength} bytes are not supported.");
            _bytesRead += length;
            var bytes = new byte[length];
            try
            {
                using var data = entry.Open();
                data.ReadExactly(bytes);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException)
            {
                throw new SharpTuneException($"{_path}: record {entry.FullName} is corrupt or truncated: {e.Message}", e);
            }
            // torch.load (miniz) checks every record's CRC-32; System.IO.Compression does not for stored records.
            if (Crc32(bytes) != entry.Crc32)
                throw new SharpTuneException($"{_path}: record {entry.FullName} fails its CRC-32 check; the file is corrupt.");
            return bytes;
        }
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>The zip CRC-32 (IEEE 802.3, reflected).</summary>
    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in data) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }
}
