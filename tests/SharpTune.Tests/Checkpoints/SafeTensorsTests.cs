using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using SharpTune.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Checkpoints;

/// <summary>A temporary directory removed after the test.</summary>
public sealed class TempDir : IDisposable
{
    /// <summary>The directory.</summary>
    public string Path { get; } = Directory.CreateTempSubdirectory("sharptune-ckpt-").FullName;

    /// <summary>A path inside the directory.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <inheritdoc />
    public void Dispose() => Directory.Delete(Path, recursive: true);
}

public class SafeTensorsTests
{
    /// <summary>Writes a raw safetensors file: 8-byte length, header text, data bytes.</summary>
    internal static void WriteRaw(string path, string header, byte[] data, ulong? declaredLength = null)
    {
        var headerBytes = Encoding.UTF8.GetBytes(header);
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, declaredLength ?? (ulong)headerBytes.Length);
        System.IO.File.WriteAllBytes(path, [.. length, .. headerBytes, .. data]);
    }

    private static SharpTuneException LoadFails(string path) => Assert.Throws<SharpTuneException>(() => SafeTensors.Load(path));

    [Fact]
    public void Save_then_Load_round_trips_every_dtype_including_a_scalar_and_an_empty_tensor()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["f64"] = torch.tensor(new double[] { 1.5, -2.25, 1e300 }),
            ["f32"] = torch.randn(3, 4),
            ["f16"] = torch.randn(2, 5).to(ScalarType.Float16),
            ["bf16"] = torch.randn(7).to(ScalarType.BFloat16),
            ["i64"] = torch.tensor(new long[] { long.MinValue, 0, long.MaxValue }),
            ["i32"] = torch.tensor(new[] { int.MinValue, 7 }),
            ["i16"] = torch.tensor(new short[] { -3, 300 }),
            ["i8"] = torch.tensor(new sbyte[] { -128, 127 }),
            ["u8"] = torch.tensor(new byte[] { 0, 255 }),
            ["bool"] = torch.tensor(new[] { true, false, true }),
            ["scalar"] = torch.tensor(3.25f),
            ["empty"] = torch.zeros(0, 3),
            ["transposed"] = torch.arange(6, dtype: ScalarType.Float32).reshape(2, 3).t(),
        };
        string path = dir.File("all.safetensors");
        SafeTensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "é" });

        var loaded = SafeTensors.Load(path);
        Assert.Equal(tensors.Keys.Order(), loaded.Keys.Order());
        foreach (var (key, expected) in tensors)
        {
            var actual = loaded[key];
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            Assert.True(expected.cpu().contiguous().bytes.SequenceEqual(actual.bytes), key);
        }
        Assert.Empty(loaded["scalar"].shape);
        Assert.Equal([0L, 3L], loaded["empty"].shape);
        foreach (var t in loaded.Values) t.Dispose();
        Assert.Equal("é", SafeTensors.ReadMetadata(path)["note"]);
    }

    [Fact]
    public void Save_writes_the_spec_layout_length_prefix_json_header_padded_to_8_and_contiguous_data()
    {
        using var dir = new TempDir();
        string path = dir.File("spec.safetensors");
        using var a = torch.tensor(new float[] { 1, 2, 3 });
        using var b = torch.tensor(new short[] { 5 });
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["b"] = b, ["a"] = a }, new Dictionary<string, string> { ["format"] = "pt" });

        byte[] file = System.IO.File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.Equal(0UL, n % 8);
        Assert.Equal(file.Length, 8 + (int)n + 12 + 2);
        string header = Encoding.UTF8.GetString(file, 8, (int)n);
        Assert.StartsWith("{", header);
        Assert.Matches("^\\{.*\\} *$", header); // padding after the JSON is spaces only
        using var json = JsonDocument.Parse(header);
        var root = json.RootElement;
        Assert.Equal("pt", root.GetProperty("__metadata__").GetProperty("format").GetString());
        Assert.Equal("F32", root.GetProperty("a").GetProperty("dtype").GetString());
        Assert.Equal([3L], root.GetProperty("a").GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal([0L, 12L], root.GetProperty("a").GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("I16", root.GetProperty("b").GetProperty("dtype").GetString());
        Assert.Equal([12L, 14L], root.GetProperty("b").GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()));
        int data = 8 + (int)n;
        Assert.Equal(2f, BitConverter.ToSingle(file, data + 4));
        Assert.Equal((short)5, BitConverter.ToInt16(file, data + 12));
    }

    [Fact]
    public void Load_reads_a_hand_written_file_with_out_of_order_keys()
    {
        using var dir = new TempDir();
        string path = dir.File("hand.safetensors");
        byte[] data = [.. BitConverter.GetBytes(1f), .. BitConverter.GetBytes(2f), .. BitConverter.GetBytes(3f)];
        WriteRaw(path, """{"z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", data);
        var loaded = SafeTensors.Load(path);
        Assert.Equal(1f, loaded["z"][0].item<float>());
        Assert.Equal(3f, loaded["a"][1].item<float>());
        Assert.Equal(["z", "a"], SafeTensors.ReadHeader(path).Names);
    }

    [Fact]
    public void Load_rejects_a_file_shorter_than_the_length_prefix()
    {
        using var dir = new TempDir();
        string path = dir.File("short.safetensors");
        System.IO.File.WriteAllBytes(path, [1, 2, 3]);
        var e = LoadFails(path);
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void Load_rejects_a_header_length_past_the_end_of_the_file()
    {
        using var dir = new TempDir();
        string path = dir.File("len.safetensors");
        WriteRaw(path, "{}", [], declaredLength: 1_000_000);
        var e = LoadFails(path);
        Assert.Contains("header length 1000000 runs past the end", e.Message);
        WriteRaw(path, "{}", [], declaredLength: ulong.MaxValue);
        Assert.Contains("runs past the end", LoadFails(path).Message);
    }

    [Fact]
    public void Load_rejects_a_truncated_file_naming_the_tensor_whose_data_is_cut()
    {
        using var dir = new TempDir();
        string full = dir.File("full.safetensors");
        using (var a = torch.ones(4))
        using (var b = torch.ones(100))
            SafeTensors.Save(full, new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b });
        byte[] bytes = System.IO.File.ReadAllBytes(full);
        string cut = dir.File("cut.safetensors");
        System.IO.File.WriteAllBytes(cut, bytes[..^10]);
        var e = LoadFails(cut);
        Assert.Contains(cut, e.Message);
        Assert.Contains("'b'", e.Message);
        Assert.Contains("past the end of the data section", e.Message);
    }

    [Fact]
    public void Load_rejects_offsets_past_the_end_of_the_file()
    {
        using var dir = new TempDir();
        string path = dir.File("off.safetensors");
        WriteRaw(path, """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8000000000]}}""", new byte[8]);
        var e = LoadFails(path);
        Assert.Contains("'w'", e.Message);
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void Load_rejects_an_unknown_dtype_listing_the_supported_ones()
    {
        using var dir = new TempDir();
        string path = dir.File("dtype.safetensors");
        WriteRaw(path, """{"w":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}}""", new byte[1]);
        var e = LoadFails(path);
        Assert.Contains("'w'", e.Message);
        Assert.Contains("'F7'", e.Message);
        Assert.Contains("BF16", e.Message);
    }

    [Theory]
    [InlineData("{\"w\": {\"dtype\": \"F32\", ", "not valid JSON")]
    [InlineData("[1, 2]", "does not start with '{'")]
    [InlineData("{\"w\": 5}", "'w': header entry must be an object")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", "shape[0] must be a non-negative integer")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", "shape[0] must be a non-negative integer")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", "needs an array \"data_offsets\"")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", "two entries")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", "key 'w' twice")]
    [InlineData("{\"__metadata__\": {\"a\": 1}, \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", "__metadata__.a must be a string")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 4]}}", "overflows")]
    public void Load_rejects_a_malformed_header_naming_the_problem(string header, string expected)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.safetensors");
        WriteRaw(path, header, new byte[4]);
        var e = LoadFails(path);
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Load_rejects_a_shape_whose_byte_count_differs_from_its_offsets()
    {
        using var dir = new TempDir();
        string path = dir.File("count.safetensors");
        WriteRaw(path, """{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", new byte[8]);
        var e = LoadFails(path);
        Assert.Contains("'w'", e.Message);
        Assert.Contains("(12 bytes) but data_offsets [0, 8] span 8 bytes", e.Message);
    }

    [Fact]
    public void Load_rejects_overlapping_or_gapped_data_as_the_reference_reader_does()
    {
        using var dir = new TempDir();
        string path = dir.File("overlap.safetensors");
        WriteRaw(path, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", new byte[8]);
        Assert.Contains("contiguous, non-overlapping", LoadFails(path).Message);
        WriteRaw(path, """{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", new byte[8]);
        var e = LoadFails(path);
        Assert.Contains("'a'", e.Message);
        Assert.Contains("contiguous", e.Message);
    }

    [Fact]
    public void Load_rejects_trailing_bytes_after_the_last_tensor()
    {
        using var dir = new TempDir();
        string path = dir.File("trailing.safetensors");
        WriteRaw(path, """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", new byte[6]);
        Assert.Contains("cover 4 bytes but the data section has 6", LoadFails(path).Message);
    }

    [Fact]
    public void Load_survives_random_corruption_with_only_SharpTuneExceptions()
    {
        using var dir = new TempDir();
        string good = dir.File("good.safetensors");
        using (var a = torch.randn(3, 2))
        using (var b = torch.arange(5))
            SafeTensors.Save(good, new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b });
        byte[] original = System.IO.File.ReadAllBytes(good);
        var random = new Random(1234);
        string path = dir.File("fuzz.safetensors");
        int rejected = 0;
        for (int i = 0; i < 300; i++)
        {
            byte[] bytes = (byte[])original.Clone();
            int flips = random.Next(1, 4);
            for (int f = 0; f < flips; f++) bytes[random.Next(Math.Min(bytes.Length, 8 + 160))] = (byte)random.Next(256);
            System.IO.File.WriteAllBytes(path, random.Next(4) == 0 ? bytes[..random.Next(bytes.Length)] : bytes);
            try
            {
                foreach (var t in SafeTensors.Load(path).Values) t.Dispose();
            }
            catch (SharpTuneException)
            {
                rejected++;
            }
        }
        Assert.True(rejected > 100, $"only {rejected} of 300 corrupt files were rejected");
    }

    [Fact]
    public void Save_rejects_a_dtype_safetensors_cannot_store_naming_the_tensor()
    {
        using var dir = new TempDir();
        using var c = torch.zeros(2, ScalarType.ComplexFloat32);
        var e = Assert.Throws<SharpTuneException>(() => SafeTensors.Save(dir.File("c.safetensors"), new Dictionary<string, Tensor> { ["c"] = c }));
        Assert.Contains("'c'", e.Message);
        Assert.False(System.IO.File.Exists(dir.File("c.safetensors")));
    }
}
