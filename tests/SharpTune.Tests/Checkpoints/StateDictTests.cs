using SharpTune.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Tests.Checkpoints;

/// <summary>A module whose keys look like a BERT block: dense.weight/bias, LayerNorm.weight/bias.</summary>
internal sealed class TinyBlock : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are checkpoint keys
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;
#pragma warning restore IDE1006

    public TinyBlock() : base(nameof(TinyBlock))
    {
        dense = nn.Linear(3, 2);
        LayerNorm = nn.LayerNorm(2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => LayerNorm.forward(dense.forward(input));
}

public class StateDictTests
{
    private static Dictionary<string, Tensor> Checkpoint(string prefix = "") => new()
    {
        [prefix + "dense.weight"] = torch.arange(6, dtype: ScalarType.Float64).reshape(2, 3),
        [prefix + "dense.bias"] = torch.tensor(new[] { 7.0, 8.0 }),
        [prefix + "LayerNorm.weight"] = torch.tensor(new[] { 9.0, 10.0 }),
        [prefix + "LayerNorm.bias"] = torch.tensor(new[] { 11.0, 12.0 }),
    };

    [Fact]
    public void LoadStrict_copies_every_tensor_converting_dtype()
    {
        using var scope = torch.NewDisposeScope();
        using var module = new TinyBlock();
        var result = StateDict.LoadStrict(module, Checkpoint(), "ckpt.safetensors");
        Assert.Equal(4, result.Loaded.Count);
        var state = module.state_dict();
        Assert.Equal(ScalarType.Float32, state["dense.weight"].dtype);
        Assert.Equal(5f, state["dense.weight"][1, 2].item<float>());
        Assert.Equal(12f, state["LayerNorm.bias"][1].item<float>());
        Assert.True(state["dense.weight"].requires_grad);
    }

    [Fact]
    public void LoadStrict_lists_missing_unexpected_and_misshaped_keys_in_one_error_and_copies_nothing()
    {
        using var scope = torch.NewDisposeScope();
        using var module = new TinyBlock();
        var before = module.state_dict()["dense.bias"].clone();
        var checkpoint = Checkpoint();
        checkpoint.Remove("LayerNorm.bias");
        checkpoint["dense.weight"] = torch.zeros(3, 2);
        checkpoint["pooler.dense.weight"] = torch.zeros(1);
        checkpoint["extra"] = torch.zeros(1);

        var e = Assert.Throws<SharpTuneException>(() => StateDict.LoadStrict(module, checkpoint, "ckpt.safetensors"));
        Assert.StartsWith("ckpt.safetensors: ", e.Message);
        Assert.Contains("missing: LayerNorm.bias;", e.Message);
        Assert.Contains("unexpected: extra, pooler.dense.weight;", e.Message);
        Assert.Contains("mis-shaped: dense.weight: file [3,2] vs model [2,3]", e.Message);
        Assert.True(ModelDirectoryTests.Same(before, module.state_dict()["dense.bias"]));
    }

    [Fact]
    public void LoadStrict_strips_the_bert_prefix_and_renames_gamma_beta_with_the_bert_key_map()
    {
        using var scope = torch.NewDisposeScope();
        using var module = new TinyBlock();
        var checkpoint = Checkpoint("bert.");
        checkpoint["bert.LayerNorm.gamma"] = checkpoint["bert.LayerNorm.weight"];
        checkpoint["bert.LayerNorm.beta"] = checkpoint["bert.LayerNorm.bias"];
        checkpoint.Remove("bert.LayerNorm.weight");
        checkpoint.Remove("bert.LayerNorm.bias");

        Assert.Throws<SharpTuneException>(() => StateDict.LoadStrict(module, checkpoint, "ckpt"));
        StateDict.LoadStrict(module, checkpoint, "ckpt", KeyMap.HuggingFaceBert);
        Assert.Equal(10f, module.state_dict()["LayerNorm.weight"][1].item<float>());
        Assert.Equal(7f, module.state_dict()["dense.bias"][0].item<float>());
    }

    [Fact]
    public void LoadStrict_skips_keys_on_the_ignore_list_and_reports_them()
    {
        using var scope = torch.NewDisposeScope();
        using var module = new TinyBlock();
        var checkpoint = Checkpoint("bert.");
        checkpoint["bert.embeddings.position_ids"] = torch.arange(4);
        checkpoint["cls.predictions.bias"] = torch.zeros(5);

        var e = Assert.Throws<SharpTuneException>(() => StateDict.LoadStrict(module, checkpoint, "ckpt", KeyMap.HuggingFaceBert));
        Assert.Contains("unexpected: bert.embeddings.position_ids, cls.predictions.bias", e.Message);

        var result = StateDict.LoadStrict(module, checkpoint, "ckpt", KeyMap.HuggingFaceBert, StateDict.BertModelIgnore);
        Assert.Equal(["bert.embeddings.position_ids", "cls.predictions.bias"], result.Ignored);
    }

    [Fact]
    public void LoadStrict_reports_two_checkpoint_keys_mapping_to_one_model_key()
    {
        using var scope = torch.NewDisposeScope();
        using var module = new TinyBlock();
        var checkpoint = Checkpoint();
        checkpoint["bert.dense.bias"] = torch.zeros(2);
        var e = Assert.Throws<SharpTuneException>(() => StateDict.LoadStrict(module, checkpoint, "ckpt", KeyMap.HuggingFaceBert));
        Assert.Contains("duplicate: bert.dense.bias and dense.bias both map to dense.bias", e.Message);
    }

    [Fact]
    public void ToDictionary_exports_module_names_with_prefix_and_round_trips_through_safetensors()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        using var source = new TinyBlock();
        var exported = StateDict.ToDictionary(source, "bert.");
        Assert.Equal(["bert.LayerNorm.bias", "bert.LayerNorm.weight", "bert.dense.bias", "bert.dense.weight"], exported.Keys.Order(StringComparer.Ordinal));
        string path = dir.File("m.safetensors");
        SafeTensors.Save(path, exported);

        using var target = new TinyBlock();
        StateDict.LoadStrict(target, SafeTensors.Load(path), path, KeyMap.HuggingFaceBert);
        using var input = torch.randn(4, 3);
        Assert.True(torch.allclose(source.call(input), target.call(input)));
    }
}
