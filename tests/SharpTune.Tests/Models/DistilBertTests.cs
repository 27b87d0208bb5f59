using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Tests.Data;
using SharpTune.Tests.Fixtures;
using TorchSharp;
using Xunit.Abstractions;

namespace SharpTune.Tests.Models;

/// <summary>DistilBERT against transformers' DistilBertForSequenceClassification, plus what is DistilBERT's own.</summary>
public class DistilBertTests
{
    private static DistilBertConfig Tiny() => new()
    {
        VocabSize = 99, Dim = 32, NLayers = 2, NHeads = 4, HiddenDim = 37, MaxPositionEmbeddings = 64,
    };

    [Fact]
    public void Config_maps_its_own_keys_onto_the_encoder_sizes_and_writes_them_back()
    {
        var config = (DistilBertConfig)Architectures.LoadConfig(Path.Combine(HfFixtures.Directory("distilbert"), "config.json"));
        Assert.Equal((32, 2, 4, 37), (config.HiddenSize, config.NumHiddenLayers, config.NumAttentionHeads, config.HiddenDim));
        Assert.Equal(0.2, config.ClassifierDropout);
        var json = config.ToJson();
        Assert.Equal(32, json["dim"]!.GetValue<int>());
        Assert.Equal(4, json["n_heads"]!.GetValue<int>());
        Assert.Null(json["hidden_size"]);
        Assert.Null(json["num_attention_heads"]);
        Assert.Equal(64, (config with { HiddenSize = 64 }).Dim);
    }

    [Theory]
    [InlineData("\"n_heads\": 5", "n_heads")]
    [InlineData("\"dim\": 0", "dim")]
    [InlineData("\"hidden_dim\": 0", "hidden_dim")]
    [InlineData("\"n_layers\": -1", "n_layers")]
    [InlineData("\"seq_classif_dropout\": 1.5", "seq_classif_dropout")]
    [InlineData("\"activation\": \"swiglu\"", "activation")]
    [InlineData("\"sinusoidal_pos_embds\": true", "sinusoidal_pos_embds")]
    public void Config_validation_names_the_bad_field(string field, string name)
    {
        using var files = new TempFiles();
        var json = new System.Text.Json.Nodes.JsonObject { ["model_type"] = "distilbert", ["dim"] = 32, ["n_heads"] = 4, ["n_layers"] = 2 };
        foreach (var (key, value) in System.Text.Json.Nodes.JsonNode.Parse("{" + field + "}")!.AsObject()) json[key] = value?.DeepClone();
        string path = files.Write("config.json", json.ToJsonString());
        var error = Assert.Throws<SharpTuneException>(() => Architectures.LoadConfig(path));
        Assert.Contains(name, error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Parameter_names_are_HF_DistilBertModel_keys()
    {
        torch.manual_seed(0);
        using var model = new DistilBertModel(Tiny());
        var expected = new List<string>
        {
            "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
        };
        for (int i = 0; i < 2; i++)
            foreach (string suffix in new[] { "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm" })
                expected.AddRange([$"transformer.layer.{i}.{suffix}.weight", $"transformer.layer.{i}.{suffix}.bias"]);
        Assert.Equal(expected.Order(), model.named_parameters().Select(p => p.name).Order());
        Assert.False(model.HasPooler);
    }

    [Fact]
    public void Token_types_are_ignored()
    {
        torch.manual_seed(1);
        using var model = new DistilBertModel(Tiny());
        model.eval();
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(new long[] { 2, 17, 33, 3, 41, 3 }, 1, 6);
        var types = torch.tensor(new long[] { 0, 0, 0, 0, 1, 1 }, 1, 6);
        Assert.True(model.call(ids, types, null).LastHiddenState.eq(model.call(ids, null, null).LastHiddenState).all().item<bool>());
    }

    [Fact]
    public void Sequence_head_is_PreClassifierHead_with_its_keys_at_the_task_model_root()
    {
        using var model = HfParity.LoadClassifier("distilbert");
        Assert.IsType<PreClassifierHead>(model.Head);
        Assert.True(model.Head.KeysAtRoot);
        var headKeys = model.named_parameters().Select(p => p.name).Where(k => !k.StartsWith("distilbert.", StringComparison.Ordinal));
        Assert.Equal(["classifier.bias", "classifier.weight", "pre_classifier.bias", "pre_classifier.weight"], headKeys.Order());

        using var rebuilt = HeadRegistry.Create(nameof(PreClassifierHead), 32, 3, model.Head.Options());
        Assert.IsType<PreClassifierHead>(rebuilt);
        Assert.Equal(0.2, rebuilt.Options()["dropout"]!.GetValue<double>());
    }
}
