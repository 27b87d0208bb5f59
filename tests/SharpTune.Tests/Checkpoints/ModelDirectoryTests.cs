using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Checkpoints;

public class ModelDirectoryTests
{
    private static readonly BertConfig Tiny = new()
    {
        VocabSize = 100, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 37,
        MaxPositionEmbeddings = 64,
    };

    private static Dictionary<string, Tensor> Weights() => new()
    {
        ["embeddings.word_embeddings.weight"] = torch.randn(100, 32),
        ["encoder.layer.0.attention.self.query.weight"] = torch.randn(32, 32),
        ["encoder.layer.0.attention.self.query.bias"] = torch.randn(32),
        ["pooler.dense.weight"] = torch.randn(32, 32),
    };

    internal static bool Same(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    [Fact]
    public void Save_then_Open_round_trips_config_and_weights_of_a_real_directory()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var weights = Weights();
        HfModelDirectory.Save(dir.Path, Tiny, weights); // the directory as a whole: files added afterwards
        File.WriteAllText(dir.File("vocab.txt"), "[PAD]\n[UNK]\n");

        var opened = HfModelDirectory.Open(dir.Path);
        Assert.Equal(Tiny with { Extra = opened.Config.Extra }, opened.Config);
        Assert.False(opened.IsSharded);
        Assert.Equal(dir.File("model.safetensors"), opened.WeightsPath);
        Assert.Equal(dir.File("vocab.txt"), opened.VocabPath);
        Assert.Null(opened.TokenizerJsonPath);
        var loaded = opened.LoadWeights();
        foreach (var (key, tensor) in weights) Assert.True(Same(tensor, loaded[key]), key);
        Assert.Equal("pt", SafeTensors.ReadMetadata(opened.WeightsPath)["format"]);
    }

    [Fact]
    public void Save_shards_at_the_size_limit_and_Open_loads_every_shard()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var weights = Weights();
        HfModelDirectory.Save(dir.Path, Tiny, weights, maxShardBytes: 8 * 1024);

        var opened = HfModelDirectory.Open(dir.Path);
        Assert.True(opened.IsSharded);
        var index = SafeTensorsIndex.Read(opened.WeightsPath);
        Assert.Equal(3, index.Shards.Count); // 12.8 KB embeddings alone (over the limit), query bias + weight (4.2 KB), pooler
        Assert.Equal(weights.Values.Sum(t => t.numel() * 4), index.TotalSize);
        Assert.False(File.Exists(dir.File("model.safetensors")));
        var loaded = opened.LoadWeights();
        Assert.Equal(weights.Keys.Order(), loaded.Keys.Order());
        foreach (var (key, tensor) in weights) Assert.True(Same(tensor, loaded[key]), key);
    }

    [Fact]
    public void Sharded_load_names_a_missing_shard_file()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        HfModelDirectory.Save(dir.Path, Tiny, Weights(), maxShardBytes: 8 * 1024);
        File.Delete(dir.File("model-00002-of-00003.safetensors"));
        var e = Assert.Throws<SharpTuneException>(() => HfModelDirectory.Open(dir.Path).LoadWeights());
        Assert.Contains("model.safetensors.index.json", e.Message);
        Assert.Contains("shard 'model-00002-of-00003.safetensors'", e.Message);
    }

    [Fact]
    public void Sharded_load_names_a_key_the_index_puts_in_a_shard_that_lacks_it()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        HfModelDirectory.Save(dir.Path, Tiny, Weights(), maxShardBytes: 8 * 1024);
        string indexPath = dir.File(SafeTensorsIndex.FileName);
        var index = JsonNode.Parse(File.ReadAllText(indexPath))!;
        index["weight_map"]!["ghost.weight"] = "model-00001-of-00003.safetensors";
        File.WriteAllText(indexPath, index.ToJsonString());
        var e = Assert.Throws<SharpTuneException>(() => SafeTensorsIndex.Load(indexPath));
        Assert.Contains("ghost.weight in model-00001-of-00003.safetensors", e.Message);

        index["weight_map"]!.AsObject().Remove("ghost.weight");
        index["weight_map"]!.AsObject().Remove("encoder.layer.0.attention.self.query.bias");
        File.WriteAllText(indexPath, index.ToJsonString());
        e = Assert.Throws<SharpTuneException>(() => SafeTensorsIndex.Load(indexPath));
        Assert.Contains("contains encoder.layer.0.attention.self.query.bias, which weight_map does not assign", e.Message);
    }

    [Fact]
    public void Open_names_a_missing_directory()
    {
        string path = Path.Combine(Path.GetTempPath(), "sharptune-no-such-model-dir");
        var e = Assert.Throws<SharpTuneException>(() => HfModelDirectory.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void Open_names_a_missing_config_json()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<SharpTuneException>(() => HfModelDirectory.Open(dir.Path));
        Assert.Contains(dir.File("config.json"), e.Message);
    }

    [Fact]
    public void Open_names_the_file_and_line_of_malformed_config_json()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), "{\n  \"hidden_size\": 32,\n  \"num_attention_heads\": ,\n}");
        var e = Assert.Throws<SharpTuneException>(() => HfModelDirectory.Open(dir.Path));
        Assert.Contains(dir.File("config.json"), e.Message);
        Assert.Contains("line 3", e.Message);
    }

    [Fact]
    public void Open_names_an_invalid_config_field()
    {
        using var dir = new TempDir();
        (Tiny with { NumAttentionHeads = 5 }).Save(dir.File("config.json"));
        var e = Assert.Throws<SharpTuneException>(() => HfModelDirectory.Open(dir.Path));
        Assert.Contains(dir.File("config.json"), e.Message);
        Assert.Contains("hidden_size (32) must be a multiple of num_attention_heads (5)", e.Message);
    }

    [Fact]
    public void A_pytorch_bin_only_directory_opens_and_a_legacy_format_bin_is_named_on_load()
    {
        using var dir = new TempDir();
        Tiny.Save(dir.File("config.json"));
        File.WriteAllBytes(dir.File("pytorch_model.bin"), [0x80, 0x02]);
        var opened = HfModelDirectory.Open(dir.Path);
        Assert.Equal(dir.File("pytorch_model.bin"), opened.WeightsPath);
        var e = Assert.Throws<SharpTuneException>(() => opened.LoadWeights());
        Assert.Contains($"{dir.File("pytorch_model.bin")}: is in the legacy torch.save format", e.Message);
    }

    [Fact]
    public void Open_tells_to_convert_a_tensorflow_only_directory()
    {
        using var dir = new TempDir();
        Tiny.Save(dir.File("config.json"));
        File.WriteAllBytes(dir.File("tf_model.h5"), [0x89, 0x48]);
        var e = Assert.Throws<SharpTuneException>(() => HfModelDirectory.Open(dir.Path));
        Assert.Contains("tf_model.h5", e.Message);
        Assert.Contains("Convert", e.Message);
    }
}
