using System.Text.Json.Nodes;
using Google.Protobuf;
using SharpTune.Checkpoints;
using SharpTune.Models;
using TorchSharp;

namespace SharpTune.Tests.Checkpoints;

/// <summary>Writes a tiny torch.onnx-shaped BERT graph (hidden 8, 2 layers, 2 heads) with ONNX's protobuf field numbers.</summary>
internal sealed class TinyOnnx
{
    public const int Hidden = 8, Layers = 2, Heads = 2, Intermediate = 16, Vocab = 10, Positions = 12;
    public bool Pooler { get; init; } = true;
    public bool FloatData { get; init; }
    public string Prefix { get; init; } = "";
    public string? ExternalTensor { get; init; }
    public string? ExtraInitializer { get; init; }

    private readonly List<byte[]> _nodes = [], _initializers = [];
    private int _counter;

    public string Write(string directory)
    {
        var random = new Random(1);
        float[] Values(long count) => Enumerable.Range(0, (int)count).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        void Init(string name, params long[] dims) => _initializers.Add(Tensor(name, dims, Values(dims.Aggregate(1L, (a, b) => a * b))));

        Init(Prefix + "embeddings.word_embeddings.weight", Vocab, Hidden);
        Init(Prefix + "embeddings.position_embeddings.weight", Positions, Hidden);
        Init(Prefix + "embeddings.token_type_embeddings.weight", 2, Hidden);
        Init(Prefix + "embeddings.LayerNorm.weight", Hidden);
        Init(Prefix + "embeddings.LayerNorm.bias", Hidden);
        _initializers.Add(IntTensor(Prefix + "embeddings.position_ids", Enumerable.Range(0, Positions).Select(i => (long)i).ToArray(), 1, Positions));
        _nodes.Add(Node("Constant", [], ["eps"], Attribute("value", Tensor("", [], [1e-12f]))));
        _nodes.Add(Node("Add", ["variance", "eps"], ["var_eps"]));
        _nodes.Add(Node("Sqrt", ["var_eps"], ["std"]));
        void Linear(string module, long inFeatures, long outFeatures)
        {
            string weight = $"onnx::MatMul_{++_counter}";
            Init(weight, inFeatures, outFeatures);
            Init(Prefix + module + ".bias", outFeatures);
            _nodes.Add(Node("MatMul", ["x", weight], [$"mm{_counter}"]));
            _nodes.Add(Node("Add", [Prefix + module + ".bias", $"mm{_counter}"], [$"{module}.out"]));
        }
        for (int i = 0; i < Layers; i++)
        {
            string layer = $"encoder.layer.{i}.";
            foreach (string part in new[] { "query", "key", "value" }) Linear(layer + "attention.self." + part, Hidden, Hidden);
            _initializers.Add(IntTensor($"heads{i}", [Heads], 1));
            _initializers.Add(IntTensor($"dim{i}", [Hidden / Heads], 1));
            _nodes.Add(Node("Concat", ["batch", "seq", $"heads{i}", $"dim{i}"], [$"shape{i}"]));
            _nodes.Add(Node("Reshape", [layer + "attention.self.query.out", $"shape{i}"], [$"split{i}"]));
            Linear(layer + "attention.output.dense", Hidden, Hidden);
            Init(Prefix + layer + "attention.output.LayerNorm.weight", Hidden);
            Init(Prefix + layer + "attention.output.LayerNorm.bias", Hidden);
            Linear(layer + "intermediate.dense", Hidden, Intermediate);
            _nodes.Add(Node("Erf", ["a"], ["b"]));
            Linear(layer + "output.dense", Intermediate, Hidden);
            Init(Prefix + layer + "output.LayerNorm.weight", Hidden);
            Init(Prefix + layer + "output.LayerNorm.bias", Hidden);
        }
        if (Pooler)
        {
            Init(Prefix + "pooler.dense.weight", Hidden, Hidden);
            Init(Prefix + "pooler.dense.bias", Hidden);
            _nodes.Add(Node("Gemm", ["cls", Prefix + "pooler.dense.weight", Prefix + "pooler.dense.bias"], ["pooled"], IntAttribute("transB", 1)));
        }
        if (ExtraInitializer is not null) Init(ExtraInitializer, 3, 3);

        var graph = new List<byte[]>();
        graph.AddRange(_nodes.Select(n => Field(1, n)));
        graph.Add(StringField(2, "tiny_bert"));
        graph.AddRange(_initializers.Select(t => Field(5, t)));
        graph.Add(Field(11, StringField(1, "input_ids")));
        graph.Add(Field(12, StringField(1, "last_hidden_state")));
        byte[] model = Concat(VarintField(1, 7), StringField(2, "pytorch"), Field(7, Concat([.. graph])));
        string path = Path.Combine(directory, "tiny.onnx");
        File.WriteAllBytes(path, model);
        string vocab = Path.Combine(directory, "vocab.txt");
        File.WriteAllText(vocab, "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nthe\r\n##s\r\na\r\nb\r\nc\r\n");
        return path;
    }

    private byte[] Tensor(string name, long[] dims, float[] values)
    {
        var parts = new List<byte[]> { PackedInt64(1, dims), VarintField(2, 1), StringField(8, name) };
        if (name == ExternalTensor)
        {
            parts.Add(Field(13, Concat(StringField(1, "location"), StringField(2, "weights.bin"))));
            parts.Add(VarintField(14, 1));
        }
        else if (FloatData)
            parts.Add(Field(4, values.SelectMany(BitConverter.GetBytes).ToArray()));
        else
            parts.Add(Field(9, values.SelectMany(BitConverter.GetBytes).ToArray()));
        return Concat([.. parts]);
    }

    private static byte[] IntTensor(string name, long[] values, params long[] dims) =>
        Concat(PackedInt64(1, dims), VarintField(2, 7), StringField(8, name), Field(9, values.SelectMany(BitConverter.GetBytes).ToArray()));

    private static byte[] Node(string op, string[] inputs, string[] outputs, params byte[][] attributes) =>
        Concat([.. inputs.Select(i => StringField(1, i)), .. outputs.Select(o => StringField(2, o)), StringField(3, op + "_" + outputs[0]), StringField(4, op), .. attributes.Select(a => Field(5, a))]);

    private static byte[] Attribute(string name, byte[] tensor) => Concat(StringField(1, name), Field(5, tensor), VarintField(20, 4));
    private static byte[] IntAttribute(string name, long value) => Concat(StringField(1, name), VarintField(3, value), VarintField(20, 2));

    private static byte[] Write(Action<CodedOutputStream> write)
    {
        using var memory = new MemoryStream();
        using (var output = new CodedOutputStream(memory, leaveOpen: true)) write(output);
        return memory.ToArray();
    }

    private static byte[] Field(int number, byte[] payload) => Write(o => { o.WriteTag(number, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(payload)); });
    private static byte[] StringField(int number, string value) => Write(o => { o.WriteTag(number, WireFormat.WireType.LengthDelimited); o.WriteString(value); });
    private static byte[] VarintField(int number, long value) => Write(o => { o.WriteTag(number, WireFormat.WireType.Varint); o.WriteInt64(value); });
    private static byte[] PackedInt64(int number, long[] values) => values.Length == 0 ? [] : Field(number, Write(o => { foreach (long v in values) o.WriteInt64(v); }));
    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}

public sealed class OnnxImporterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "sharptune-onnx-unit-" + Guid.NewGuid().ToString("N"));

    public OnnxImporterTests()
    {
        SharpTune.Native.TorchRuntime.EnsureLoaded();
        Directory.CreateDirectory(_root);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private (string Onnx, string Vocab) Write(TinyOnnx model, string name)
    {
        string directory = Directory.CreateDirectory(Path.Combine(_root, name)).FullName;
        return (model.Write(directory), Path.Combine(directory, "vocab.txt"));
    }

    private static Dictionary<string, float[]> Weights(string modelDir)
    {
        var tensors = SafeTensors.Load(Path.Combine(modelDir, "model.safetensors"));
        var result = tensors.ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());
        foreach (var t in tensors.Values) t.Dispose();
        return result;
    }

    [Fact]
    public void Tiny_export_imports_to_the_expected_keys_and_config()
    {
        var (onnx, vocab) = Write(new TinyOnnx(), "plain");
        var report = OnnxImporter.Import(onnx, vocab, Path.Combine(_root, "out"));
        var config = (BertConfig)Architectures.LoadConfig(Path.Combine(_root, "out", "config.json"));
        Assert.Equal((TinyOnnx.Hidden, TinyOnnx.Layers, TinyOnnx.Heads, TinyOnnx.Intermediate, TinyOnnx.Vocab, TinyOnnx.Positions, 1e-12),
            (config.HiddenSize, config.NumHiddenLayers, config.NumAttentionHeads, config.IntermediateSize, config.VocabSize, config.MaxPositionEmbeddings, config.LayerNormEps));
        Assert.Equal(BertKeys.Expected(config).Keys.Order(StringComparer.Ordinal), Weights(report.OutputDirectory).Keys.Order(StringComparer.Ordinal));
        Assert.Equal(TinyOnnx.Intermediate * TinyOnnx.Hidden, Weights(report.OutputDirectory)["encoder.layer.1.output.dense.weight"].Length);
        Assert.Equal("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##s\na\nb\nc\n", File.ReadAllText(Path.Combine(_root, "out", "vocab.txt")));
    }

    [Fact]
    public void Export_without_pooler_gets_an_initialised_pooler_and_the_config_says_so()
    {
        var (onnx, vocab) = Write(new TinyOnnx { Pooler = false }, "nopooler");
        var report = OnnxImporter.Import(onnx, vocab, Path.Combine(_root, "out"));
        Assert.True(report.PoolerInitialized);
        var weights = Weights(report.OutputDirectory);
        Assert.All(weights["pooler.dense.bias"], b => Assert.Equal(0f, b));
        float[] w = weights["pooler.dense.weight"];
        double std = Math.Sqrt(w.Select(v => (double)v * v).Average());
        Assert.InRange(std, 0.01, 0.04); // N(0, initializer_range = 0.02)
        var notes = JsonNode.Parse(File.ReadAllText(Path.Combine(report.OutputDirectory, "config.json")))!["sharptune_notes"]!.AsArray();
        Assert.Contains(notes, n => n!.GetValue<string>().Contains("no pooler"));
        Assert.Contains(report.Notes, n => n.Contains("no pooler"));
    }

    [Fact]
    public void Float_data_and_a_bert_prefix_import_the_same_weights_as_raw_data()
    {
        var (rawOnnx, rawVocab) = Write(new TinyOnnx(), "raw");
        var (floatOnnx, floatVocab) = Write(new TinyOnnx { FloatData = true, Prefix = "bert." }, "floatdata");
        var raw = Weights(OnnxImporter.Import(rawOnnx, rawVocab, Path.Combine(_root, "out-raw")).OutputDirectory);
        var floats = Weights(OnnxImporter.Import(floatOnnx, floatVocab, Path.Combine(_root, "out-float")).OutputDirectory);
        Assert.Equal(raw.Keys.Order(StringComparer.Ordinal), floats.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, values) in raw) Assert.Equal(values, floats[key]);
    }

    [Fact]
    public void External_data_is_rejected_naming_file_and_tensor()
    {
        var (onnx, vocab) = Write(new TinyOnnx { ExternalTensor = "embeddings.word_embeddings.weight" }, "external");
        var error = Assert.Throws<SharpTuneException>(() => OnnxImporter.Import(onnx, vocab, Path.Combine(_root, "out")));
        Assert.Contains(onnx, error.Message);
        Assert.Contains("embeddings.word_embeddings.weight", error.Message);
        Assert.Contains("external", error.Message);
    }

    [Fact]
    public void Unmappable_initializer_is_named_and_nothing_is_written()
    {
        var (onnx, vocab) = Write(new TinyOnnx { ExtraInitializer = "classifier.weight" }, "extra");
        string outDir = Path.Combine(_root, "out");
        var error = Assert.Throws<SharpTuneException>(() => OnnxImporter.Import(onnx, vocab, outDir));
        Assert.Contains(onnx, error.Message);
        Assert.Contains("'classifier.weight'", error.Message);
        Assert.False(Directory.Exists(outDir));
        Assert.Empty(Directory.GetDirectories(_root, ".out.tmp-*"));
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("garbage")]
    [InlineData("text")]
    public void Unreadable_onnx_file_gives_an_error_naming_the_file(string kind)
    {
        var (onnx, vocab) = Write(new TinyOnnx(), kind);
        byte[] bytes = File.ReadAllBytes(onnx);
        File.WriteAllBytes(onnx, kind switch
        {
            "truncated" => bytes[..(bytes.Length / 2)],
            "garbage" => Enumerable.Range(0, 4096).Select(i => (byte)(i * 7919 % 251)).ToArray(),
            _ => "hello, this is not a model\n"u8.ToArray(),
        });
        string outDir = Path.Combine(_root, "out");
        var error = Assert.Throws<SharpTuneException>(() => OnnxImporter.Import(onnx, vocab, outDir));
        Assert.Contains(onnx, error.Message);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Missing_files_and_a_non_empty_output_directory_are_reported()
    {
        var (onnx, vocab) = Write(new TinyOnnx(), "present");
        string missing = Path.Combine(_root, "nope.onnx");
        Assert.Contains(missing, Assert.Throws<SharpTuneException>(() => OnnxImporter.Import(missing, vocab, Path.Combine(_root, "o1"))).Message);
        Assert.Contains("nope.txt", Assert.Throws<SharpTuneException>(() => OnnxImporter.Import(onnx, Path.Combine(_root, "nope.txt"), Path.Combine(_root, "o2"))).Message);
        string occupied = Directory.CreateDirectory(Path.Combine(_root, "occupied")).FullName;
        File.WriteAllText(Path.Combine(occupied, "keep.txt"), "mine");
        Assert.Contains(occupied, Assert.Throws<SharpTuneException>(() => OnnxImporter.Import(onnx, vocab, occupied)).Message);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(occupied, "keep.txt")));
    }
}
