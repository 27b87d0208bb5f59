using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Models;
using TorchSharp;
using Xunit.Abstractions;

namespace SharpTune.Tests.Checkpoints;

/// <summary>Imports the packaged all-MiniLM-L6-v2 once (through the cache) for the tests of this class.</summary>
public sealed class MiniLMImportFixture : IDisposable
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "sharptune-onnx-tests-" + Guid.NewGuid().ToString("N"));
    public string OnnxPath { get; }
    public string ModelDir { get; }
    public TimeSpan ImportTime { get; }

    public MiniLMImportFixture()
    {
        SharpTune.Native.TorchRuntime.EnsureLoaded();
        Directory.CreateDirectory(Root);
        OnnxPath = Path.Combine(Root, "model.onnx");
        PackagedResources.ExtractToFile(PackagedResources.MiniLMAssemblyPath, PackagedResources.MiniLMOnnx, OnnxPath);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        ModelDir = PackagedModels.MiniLM(Path.Combine(Root, "cache"));
        ImportTime = clock.Elapsed;
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

public class OnnxMiniLMTests(MiniLMImportFixture fixture, ITestOutputHelper output) : IClassFixture<MiniLMImportFixture>
{
    [Fact]
    public void Import_yields_exactly_the_BertModel_keys_with_their_shapes()
    {
        var config = (BertConfig)Architectures.LoadConfig(Path.Combine(fixture.ModelDir, "config.json"));
        var tensors = SafeTensors.Load(Path.Combine(fixture.ModelDir, "model.safetensors"));
        try
        {
            var expected = BertKeys.Expected(config);
            Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), tensors.Keys.Order(StringComparer.Ordinal));
            foreach (var (key, shape) in expected)
                Assert.True(shape.SequenceEqual(tensors[key].shape), $"{key}: [{string.Join(",", tensors[key].shape)}] vs [{string.Join(",", shape)}]");
            Assert.Equal(6 * 16 + 5 + 2, tensors.Count);
        }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
    }

    [Fact]
    public void Config_is_inferred_from_the_graph()
    {
        var config = (BertConfig)Architectures.LoadConfig(Path.Combine(fixture.ModelDir, "config.json"));
        Assert.Equal(("bert", 30522, 384, 6, 12, 1536), (config.ModelType, config.VocabSize, config.HiddenSize, config.NumHiddenLayers, config.NumAttentionHeads, config.IntermediateSize));
        Assert.Equal((512, 2, 1e-12, "gelu", 0), (config.MaxPositionEmbeddings, config.TypeVocabSize, config.LayerNormEps, config.HiddenAct, config.PadTokenId));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture.ModelDir, "config.json")))!;
        Assert.Equal("BertModel", json["architectures"]![0]!.GetValue<string>());
        Assert.Null(json["sharptune_notes"]); // everything was read from the graph, the pooler included
    }

    [Fact]
    public void Report_says_heads_and_eps_come_from_the_graph_and_the_pooler_from_the_file()
    {
        string outDir = Path.Combine(fixture.Root, "direct-" + Guid.NewGuid().ToString("N"));
        string vocab = Path.Combine(fixture.Root, "vocab-crlf.txt");
        PackagedResources.ExtractToFile(PackagedResources.MiniLMAssemblyPath, PackagedResources.MiniLMVocab, vocab);
        var report = OnnxImporter.Import(fixture.OnnxPath, vocab, outDir);
        Assert.StartsWith("graph: Reshape", report.AttentionHeadsSource);
        Assert.StartsWith("graph: Add", report.LayerNormEpsSource);
        Assert.False(report.PoolerInitialized);
        Assert.Empty(report.Notes);
        Assert.Contains("embeddings.position_ids", report.IgnoredInitializers);
        Assert.Equal(6 * 6, report.Mappings.Count(m => m.Rule == "matmul+bias" && m.Transposed));
        Assert.Contains(report.Mappings, m => m.Key == "pooler.dense.weight" && m.Rule == "named" && !m.Transposed); // Gemm with transB=1
        output.WriteLine($"import of the 90 MB MiniLM export: {report.Elapsed.TotalMilliseconds:F0} ms; first cached import incl. extraction: {fixture.ImportTime.TotalMilliseconds:F0} ms");
        Assert.True(report.Elapsed < TimeSpan.FromSeconds(20), $"import took {report.Elapsed}");
    }

    [Fact]
    public void Query_weight_of_layer_0_reproduces_the_onnx_MatMul()
    {
        var graph = OnnxGraph.Load(fixture.OnnxPath);
        var matmul = graph.Nodes.First(n => n.OpType == "MatMul" && graph.Consumers(n.Outputs[0]).Any(a => a.Inputs.Contains("encoder.layer.0.attention.self.query.bias")));
        OnnxTensor onnxWeight = graph.Initializers[matmul.Inputs[1]];
        var tensors = SafeTensors.Load(Path.Combine(fixture.ModelDir, "model.safetensors"));
        try
        {
            using var scope = torch.NewDisposeScope();
            var w = torch.tensor(onnxWeight.Floats(), onnxWeight.Dims); // [in, out], as MatMul(x, W) uses it
            var x = torch.randn(3, 384, generator: new torch.Generator(7));
            var onnxResult = torch.matmul(x, w);
            var hfResult = torch.matmul(x, tensors["encoder.layer.0.attention.self.query.weight"].t()); // nn.Linear: x W^T
            Assert.True(onnxResult.allclose(hfResult, rtol: 0, atol: 1e-5), "x @ W_onnx differs from x @ W_hf^T");
            Assert.True(w.t().eq(tensors["encoder.layer.0.attention.self.query.weight"]).all().item<bool>(), "W_hf must be exactly W_onnx^T");
            Assert.False(w.allclose(tensors["encoder.layer.0.attention.self.key.weight"].t()), "query and key weights must differ");
        }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
    }

    [Fact]
    public void Vocab_and_tokenizer_files_are_written_with_LF_line_endings()
    {
        string text = File.ReadAllText(Path.Combine(fixture.ModelDir, "vocab.txt"));
        Assert.DoesNotContain('\r', text);
        string[] lines = text.TrimEnd('\n').Split('\n');
        Assert.Equal(30522, lines.Length);
        Assert.Equal("[CLS]", lines[101]);
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture.ModelDir, "tokenizer_config.json")))!;
        Assert.True(tokenizer["do_lower_case"]!.GetValue<bool>());
        Assert.Equal("BertTokenizer", tokenizer["tokenizer_class"]!.GetValue<string>());
        Assert.Equal(512, tokenizer["model_max_length"]!.GetValue<int>());
        var special = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture.ModelDir, "special_tokens_map.json")))!;
        Assert.Equal("[MASK]", special["mask_token"]!.GetValue<string>());
    }

    [Fact]
    public void Cached_model_is_reused_and_an_incomplete_directory_is_replaced()
    {
        string cache = Path.Combine(fixture.Root, "cache");
        string marker = Path.Combine(fixture.ModelDir, PackagedModels.MarkerFile);
        DateTime written = File.GetLastWriteTimeUtc(marker);
        Assert.Equal(fixture.ModelDir, PackagedModels.MiniLM(cache));
        Assert.Equal(written, File.GetLastWriteTimeUtc(marker));
        Assert.True(fixture.ImportTime < TimeSpan.FromSeconds(30), $"first import took {fixture.ImportTime}");

        string broken = Path.Combine(fixture.Root, "broken-cache");
        string brokenDir = Path.Combine(broken, "models", PackagedModels.MiniLMName);
        Directory.CreateDirectory(brokenDir);
        File.WriteAllText(Path.Combine(brokenDir, "config.json"), "{"); // a half-written import without marker
        Assert.False(PackagedModels.IsComplete(brokenDir));
        Assert.Equal(brokenDir, PackagedModels.MiniLM(broken));
        Assert.True(PackagedModels.IsComplete(brokenDir));
        Architectures.LoadConfig(Path.Combine(brokenDir, "config.json"));
        Assert.DoesNotContain(Directory.GetDirectories(Path.Combine(broken, "models")), d => Path.GetFileName(d).StartsWith('.'));
    }
}
