using System.Text;
using SharpTune.Checkpoints;
using SharpTune.Tests.Fixtures;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Checkpoints;

/// <summary>
/// pytorch_model.bin through the restricted unpickler: checkpoints written as torch.save writes them (by
/// <see cref="TorchSaveWriter"/>) from the Python-saved fixtures load bit-identical to their safetensors and give
/// transformers' logits; strided, shared, half-precision and big-endian storages load; code-running globals and
/// corrupt archives are refused with errors naming the file.
/// </summary>
public sealed class PickleCheckpointTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Architectures => [.. HfFixtures.Architectures];

    /// <summary>A model directory with the fixture's config.json and, instead of model.safetensors, what <paramref name="write"/> writes.</summary>
    private string ConvertedFixture(string architecture, Action<string, Dictionary<string, Tensor>> write)
    {
        string dir = Path.Combine(_dir.Path, architecture);
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(HfFixtures.Directory(architecture), "config.json"), Path.Combine(dir, "config.json"));
        var tensors = SafeTensors.Load(Path.Combine(HfFixtures.Directory(architecture), "model.safetensors"));
        try
        {
            write(dir, tensors);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        return dir;
    }

    private static void AssertBitIdentical(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, tensor) in expected)
            Assert.True(ModelDirectoryTests.Same(tensor, actual[key]), $"{key}: {actual[key].dtype} [{string.Join(",", actual[key].shape)}] differs");
    }

    private static Dictionary<string, Tensor> FixtureTensors(string architecture) =>
        SafeTensors.Load(Path.Combine(HfFixtures.Directory(architecture), "model.safetensors"));

    private static void AssertLogitsMatchTransformers(string directory, string architecture)
    {
        var (model, _, _) = ClassifierCheckpoint.Load(directory);
        using var _ = model;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var c = HfFixtures.Case(architecture, "padded_batch");
        var logits = model.call(HfParity.Ints(c, "input_ids")!, HfParity.Ints(c, "token_type_ids"), HfParity.Ints(c, "attention_mask")!);
        float diff = (logits.flatten() - tensor(HfFixtures.Floats(c["sequence_logits"]))).abs().max().item<float>();
        Assert.True(diff < 1e-4, $"{architecture}: logits from pytorch_model.bin differ from transformers' by {diff}");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Fixture_converted_to_pytorch_model_bin_loads_bit_identical_and_gives_transformers_logits(string architecture)
    {
        string dir = ConvertedFixture(architecture, (d, tensors) => TorchSaveWriter.Save(Path.Combine(d, "pytorch_model.bin"), tensors));
        var opened = HfModelDirectory.Open(dir);
        Assert.Equal(Path.Combine(dir, "pytorch_model.bin"), opened.WeightsPath);
        var expected = FixtureTensors(architecture);
        var loaded = opened.LoadWeights();
        try
        {
            AssertBitIdentical(expected, loaded);
        }
        finally
        {
            foreach (var t in expected.Values.Concat(loaded.Values)) t.Dispose();
        }
        AssertLogitsMatchTransformers(dir, architecture);
    }

    [Fact]
    public void Transposed_and_shared_storages_load_as_the_views_they_were()
    {
        // Every matrix is stored as its transpose (size [out, in], stride [1, out]) and every pair of vectors shares
        // one storage at different offsets, as views of one buffer do in Python.
        string dir = ConvertedFixture("bert", (d, tensors) =>
        {
            var storages = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var saved = new List<SavedTensor>();
            string? pendingKey = null;
            foreach (var (key, t) in tensors)
            {
                if (t.dim() == 2)
                {
                    string storageKey = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    storages[storageKey] = t.t().contiguous().flatten();
                    saved.Add(new SavedTensor(key, storageKey, 0, t.shape, [1, t.shape[0]]));
                }
                else if (t.dim() == 1 && pendingKey is null)
                {
                    pendingKey = key;
                }
                else if (t.dim() == 1)
                {
                    var first = tensors[pendingKey!];
                    string storageKey = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    storages[storageKey] = cat([first, t.to_type(first.dtype)]);
                    saved.Add(new SavedTensor(pendingKey!, storageKey, 0, first.shape, [1]));
                    saved.Add(new SavedTensor(key, storageKey, first.shape[0], t.shape, [1]));
                    Assert.Equal(first.dtype, t.dtype);
                    pendingKey = null;
                }
                else
                {
                    string storageKey = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    storages[storageKey] = t.contiguous().flatten();
                    saved.Add(new SavedTensor(key, storageKey, 0, t.shape, TorchSaveWriter.Contiguous(t.shape)));
                }
            }
            if (pendingKey is not null)
            {
                string storageKey = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                storages[storageKey] = tensors[pendingKey].contiguous();
                saved.Add(new SavedTensor(pendingKey, storageKey, 0, tensors[pendingKey].shape, [1]));
            }
            TorchSaveWriter.Save(Path.Combine(d, "pytorch_model.bin"), saved, storages);
        });
        var expected = FixtureTensors("bert");
        var loaded = PickleCheckpoint.Load(Path.Combine(dir, "pytorch_model.bin"));
        try
        {
            AssertBitIdentical(expected, loaded);
            var matrix = loaded["bert.encoder.layer.0.attention.self.query.weight"];
            Assert.False(matrix.is_contiguous());
            Assert.Equal([1L, matrix.shape[0]], matrix.stride());
        }
        finally
        {
            foreach (var t in expected.Values.Concat(loaded.Values)) t.Dispose();
        }
        AssertLogitsMatchTransformers(dir, "bert");
    }

    [Fact]
    public void Half_bfloat16_double_int_and_bool_storages_keep_their_dtype_and_bits()
    {
        using var scope = NewDisposeScope();
        var source = randn(3, 5);
        var tensors = new Dictionary<string, Tensor>
        {
            ["half"] = source.to_type(ScalarType.Float16),
            ["bf16"] = source.to_type(ScalarType.BFloat16),
            ["double"] = source.to_type(ScalarType.Float64),
            ["long"] = tensor(new long[] { long.MinValue, -1, 0, 1, 70_000, long.MaxValue }),
            ["int"] = tensor(new[] { int.MinValue, -300, 7 }),
            ["bool"] = tensor(new[] { true, false, true }),
            ["scalar"] = tensor(2.5f),
            ["empty"] = zeros(0, 4),
        };
        string path = _dir.File("dtypes.bin");
        TorchSaveWriter.Save(path, tensors);
        var loaded = PickleCheckpoint.Load(path);
        foreach (var t in loaded.Values) t.MoveToOuterDisposeScope();
        AssertBitIdentical(tensors, loaded);
        Assert.Equal(ScalarType.Float16, loaded["half"].dtype);
        Assert.Equal(ScalarType.BFloat16, loaded["bf16"].dtype);
        Assert.Equal(tensors.Keys, loaded.Keys); // file order
    }

    [Fact]
    public void Big_endian_byteorder_record_is_byte_swapped_back()
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = randn(4, 3),
            ["f16"] = randn(7).to_type(ScalarType.Float16),
            ["i64"] = tensor(new long[] { 1, -2, 1L << 40 }),
        };
        string path = _dir.File("big.bin");
        TorchSaveWriter.Save(path, tensors, byteOrder: "big");
        AssertBitIdentical(tensors, PickleCheckpoint.Load(path));
    }

    [Fact]
    public void Safetensors_are_preferred_when_the_directory_has_both()
    {
        string dir = ConvertedFixture("bert", (d, tensors) =>
        {
            using var scope = NewDisposeScope();
            TorchSaveWriter.Save(Path.Combine(d, "pytorch_model.bin"), tensors.ToDictionary(kv => kv.Key, kv => zeros_like(kv.Value)));
        });
        File.Copy(Path.Combine(HfFixtures.Directory("bert"), "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        Assert.Equal(Path.Combine(dir, "model.safetensors"), HfModelDirectory.Open(dir).WeightsPath);
        AssertLogitsMatchTransformers(dir, "bert");
    }

    [Fact]
    public void Sharded_pytorch_model_bin_index_loads_every_shard()
    {
        string dir = ConvertedFixture("bert", (d, tensors) =>
        {
            var keys = tensors.Keys.ToList();
            var weightMap = new System.Text.Json.Nodes.JsonObject();
            for (int shard = 0; shard < 2; shard++)
            {
                string name = $"pytorch_model-0000{shard + 1}-of-00002.bin";
                var part = keys.Where((_, i) => i % 2 == shard).ToList();
                TorchSaveWriter.Save(Path.Combine(d, name), part.Select(k => KeyValuePair.Create(k, tensors[k])));
                foreach (var k in part) weightMap[k] = name;
            }
            var index = new System.Text.Json.Nodes.JsonObject { ["metadata"] = new System.Text.Json.Nodes.JsonObject(), ["weight_map"] = weightMap };
            File.WriteAllText(Path.Combine(d, PickleCheckpoint.IndexFileName), index.ToJsonString());
        });
        var opened = HfModelDirectory.Open(dir);
        Assert.True(opened.IsSharded);
        var expected = FixtureTensors("bert");
        var loaded = opened.LoadWeights();
        try
        {
            AssertBitIdentical(expected, loaded);
        }
        finally
        {
            foreach (var t in expected.Values.Concat(loaded.Values)) t.Dispose();
        }
    }

    [Fact]
    public void The_fuzz_seed_is_what_the_writer_writes_and_loads_with_its_views()
    {
        // Regenerate with SHARPTUNE_WRITE_FUZZ_SEEDS=1 after changing the writer.
        string seed = Path.Combine(SharpTune.Fuzz.FuzzEngine.FindRepoRoot(AppContext.BaseDirectory), "fuzz", "seeds", "pickle", PickleCheckpoint.FileName);
        string fresh = _dir.File(PickleCheckpoint.FileName);
        TorchSaveWriter.SaveFuzzSeed(fresh);
        if (Environment.GetEnvironmentVariable("SHARPTUNE_WRITE_FUZZ_SEEDS") == "1") File.Copy(fresh, seed, overwrite: true);
        Assert.Equal(File.ReadAllBytes(fresh), File.ReadAllBytes(seed));

        using var scope = NewDisposeScope();
        var loaded = PickleCheckpoint.Load(seed);
        Assert.True(ModelDirectoryTests.Same(loaded["dense.weight"], arange(12, dtype: ScalarType.Float32).reshape(4, 3).t() / 4));
        Assert.True(ModelDirectoryTests.Same(loaded["b.bias"], arange(4, 8, dtype: ScalarType.Float32) - 3));
        Assert.Equal(ScalarType.BFloat16, loaded["bf16"].dtype);
        Assert.Equal(0.5f, loaded["scalar"].item<float>());
        Assert.Empty(loaded["scalar"].shape);
    }

    // ---- hostile and broken files ---------------------------------------------------------------------------------

    /// <summary>A torch.save archive around a hand-written data.pkl.</summary>
    private string ArchiveWith(byte[] pickle, string name = "pytorch_model.bin", params (string Name, byte[] Data)[] extra)
    {
        string path = _dir.File(name);
        File.WriteAllBytes(path, TorchSaveWriter.Zip("pytorch_model", [("data.pkl", pickle), ("byteorder", "little"u8.ToArray()), .. extra, ("version", "3\n"u8.ToArray())]));
        return path;
    }

    /// <summary>GLOBAL module\nname\n, then the argument string in a 1-tuple, REDUCE, STOP: calls module.name(argument) under pickle.loads.</summary>
    private static byte[] CallingPickle(string module, string name, string argument)
    {
        var p = new TorchSaveWriter.PickleWriter();
        p.Proto();
        p.Global(module, name);
        p.String(argument);
        p.Tuple(1);
        p.Reduce();
        p.Stop();
        return p.ToArray();
    }

    public static TheoryData<string, string> CodeRunningGlobals => new()
    {
        { "posix", "system" }, { "os", "system" }, { "builtins", "eval" }, { "__builtin__", "exec" }, { "subprocess", "call" },
    };

    [Theory]
    [MemberData(nameof(CodeRunningGlobals))]
    public void A_global_outside_the_allow_list_is_refused_and_nothing_runs(string module, string name)
    {
        string marker = _dir.File($"pwned-{module}-{name}");
        string command = module is "builtins" or "__builtin__" ? $"open('{marker}', 'w')" : $"touch {marker}";
        string path = ArchiveWith(CallingPickle(module, name, command));
        var e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.StartsWith($"{path}: refuses to load global '{module}.{name}'", e.Message);
        Assert.Contains("only tensors, storages and plain containers are allowed; no code runs", e.Message);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void A_refused_global_in_a_model_directory_fails_the_load_and_names_the_file()
    {
        string dir = ConvertedFixture("bert", (_, _) => { });
        string marker = _dir.File("pwned");
        File.WriteAllBytes(Path.Combine(dir, "pytorch_model.bin"), File.ReadAllBytes(ArchiveWith(CallingPickle("posix", "system", $"touch {marker}"))));
        var e = Assert.Throws<SharpTuneException>(() => ClassifierCheckpoint.Load(dir));
        Assert.Contains($"{Path.Combine(dir, "pytorch_model.bin")}: refuses to load global 'posix.system'", e.Message);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void A_refused_global_named_by_STACK_GLOBAL_or_hidden_as_a_storage_type_is_refused_too()
    {
        // Protocol 4: SHORT_BINUNICODE "os", SHORT_BINUNICODE "system", STACK_GLOBAL.
        byte[] stackGlobal = [0x80, 4, 0x8c, 2, .. "os"u8, 0x8c, 6, .. "system"u8, 0x93, 0x8c, 2, .. "id"u8, 0x85, (byte)'R', (byte)'.'];
        var e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(ArchiveWith(stackGlobal, "stack.bin")));
        Assert.Contains("refuses to load global 'os.system'", e.Message);

        // A tensor whose persistent id names posix.system where torch.FloatStorage belongs.
        var storages = new Dictionary<string, Tensor> { ["0"] = zeros(4) };
        byte[] pickle = TorchSaveWriter.Pickle([new SavedTensor("w", "0", 0, [4], [1])], storages);
        byte[] hidden = Replace(pickle, "ctorch\nFloatStorage\n"u8.ToArray(), "cposix\nsystem\n"u8.ToArray());
        e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(ArchiveWith(hidden, "hidden.bin", ("data/0", new byte[16]))));
        Assert.Contains("refuses to load global 'posix.system'", e.Message);
        storages["0"].Dispose();
    }

    private static byte[] Replace(byte[] data, byte[] from, byte[] to)
    {
        int at = data.AsSpan().IndexOf(from);
        Assert.True(at >= 0);
        return [.. data.AsSpan(0, at), .. to, .. data.AsSpan(at + from.Length)];
    }

    private string ValidCheckpoint(string name = "valid.bin")
    {
        using var scope = NewDisposeScope();
        string path = _dir.File(name);
        TorchSaveWriter.Save(path, new Dictionary<string, Tensor> { ["a"] = randn(64, 64), ["b"] = randn(100) });
        return path;
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.99)]
    [InlineData(0.01)]
    public void A_truncated_archive_is_an_error_naming_the_file(double keep)
    {
        string path = ValidCheckpoint();
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
        var e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.StartsWith(path + ":", e.Message);
    }

    [Fact]
    public void Corrupt_storage_bytes_fail_the_zip_checksum()
    {
        string path = ValidCheckpoint();
        byte[] bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x40; // inside data/0 (64×64 floats fill most of the file)
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.StartsWith(path + ":", e.Message);
        Assert.Contains("data/0", e.Message);
    }

    [Fact]
    public void A_storage_larger_than_its_record_is_refused_before_anything_is_allocated()
    {
        var storages = new Dictionary<string, Tensor> { ["0"] = zeros(4) };
        byte[] pickle = TorchSaveWriter.Pickle([new SavedTensor("w", "0", 0, [4], [1])], storages);
        storages["0"].Dispose();
        // numel 4 (BININT1 4 before TUPLE of the persistent id) → 2^31 - 1 via BININT.
        byte[] huge = Replace(pickle, [(byte)'K', 4, (byte)'t'], [(byte)'J', .. TorchSaveWriter.U32(int.MaxValue), (byte)'t']);
        string path = ArchiveWith(huge, "huge.bin", ("data/0", new byte[16]));
        var e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.Contains($"{path}: storage '0' is torch.FloatStorage of 2147483647 elements (8589934588 bytes) but its record data/0 has 16 bytes", e.Message);
    }

    [Fact]
    public void A_view_past_the_end_of_its_storage_is_refused()
    {
        var storages = new Dictionary<string, Tensor> { ["0"] = zeros(6) };
        string path = _dir.File("view.bin");
        TorchSaveWriter.Save(path, [new SavedTensor("w", "0", 1, [2, 3], [3, 1])], storages);
        storages["0"].Dispose();
        var e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.Contains($"{path}: tensor 'w' (offset 1, size [2, 3], stride [3, 1], storage of 6): the view reaches element 6", e.Message);
    }

    [Fact]
    public void A_missing_storage_record_is_named()
    {
        var storages = new Dictionary<string, Tensor> { ["0"] = zeros(4) };
        byte[] pickle = TorchSaveWriter.Pickle([new SavedTensor("w", "0", 0, [4], [1])], storages);
        storages["0"].Dispose();
        string path = ArchiveWith(pickle, "missing.bin");
        var e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.Contains($"{path}: the zip archive has no record pytorch_model/data/0", e.Message);
    }

    [Fact]
    public void A_truncated_pickle_and_a_state_dict_of_non_tensors_are_named()
    {
        var storages = new Dictionary<string, Tensor> { ["0"] = zeros(4) };
        byte[] pickle = TorchSaveWriter.Pickle([new SavedTensor("w", "0", 0, [4], [1])], storages);
        storages["0"].Dispose();
        string path = ArchiveWith(pickle[..(pickle.Length / 2)], "cut.bin", ("data/0", new byte[16]));
        var e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.StartsWith($"{path}: data.pkl byte ", e.Message);

        // {'w': 'not a tensor'}
        byte[] strings = [0x80, 2, (byte)'}', (byte)'X', .. TorchSaveWriter.U32(1), (byte)'w', (byte)'X', .. TorchSaveWriter.U32(3), .. "abc"u8, (byte)'s', (byte)'.'];
        path = ArchiveWith(strings, "strings.bin");
        e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.Contains($"{path}: state dict entry 'w' is the string 'abc', not a tensor", e.Message);
    }

    [Fact]
    public void The_legacy_format_and_a_non_zip_file_are_named()
    {
        string path = _dir.File("legacy.bin");
        File.WriteAllBytes(path, [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, (byte)'.']);
        var e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.Contains($"{path}: is in the legacy torch.save format of PyTorch < 1.6", e.Message);

        File.WriteAllText(path, "hello");
        e = Assert.Throws<SharpTuneException>(() => PickleCheckpoint.Load(path));
        Assert.Contains($"{path}: not a torch.save zip archive", e.Message);
    }
}
