using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Heads;
using SharpTune.Lora;
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Tests.Fixtures;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>
/// DeBERTa-v2/v3 against Hugging Face transformers 4.45.2 (Fixtures/hf/deberta-v2: a tiny random
/// DebertaV2ForSequenceClassification with relative attention, 32 log buckets, p2c+c2p, shared keys, layer-normed
/// relative embeddings) at 1e-4, plus the config's validation.
/// </summary>
public class DebertaV2Tests
{
    private const string Architecture = "deberta-v2";
    private const double Tolerance = 1e-4;

    private static readonly string ConfigPath = Path.Combine(HfFixtures.Directory(Architecture), "config.json");

    [Fact]
    public void Fixture_config_reads_as_DebertaV2Config_with_its_relative_attention_settings()
    {
        var config = Assert.IsType<DebertaV2Config>(Architectures.LoadConfig(ConfigPath));
        Assert.Equal(["p2c", "c2p"], config.PosAttType);
        Assert.Equal(32, config.PositionBuckets);
        Assert.Equal(32, config.AttentionSpan);
        Assert.Equal(3, config.ScaleFactor);
        Assert.True(config.NormalizesRelativeEmbeddings);
        Assert.Equal(0, config.TypeVocabSize);
        Assert.Equal(0.1, config.ClassifierDropout); // no cls_dropout: hidden_dropout_prob, as HF
        Assert.Same(DebertaV2Model.Registration, Architectures.ForClass("DebertaV2ForSequenceClassification"));
    }

    [Fact]
    public void Parameter_names_follow_the_config_switches_as_HF_DebertaV2Model_keys()
    {
        var config = Tiny() with { ShareAttKey = false, PositionBiasedInput = true, TypeVocabSize = 2, EmbeddingSize = 16, NormRelEbd = "none" };
        using var model = new DebertaV2Model(config);
        var names = model.named_parameters().Select(p => p.name).ToHashSet();
        string[] expectedEmbeddings =
        [
            "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
            "embeddings.embed_proj.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "encoder.rel_embeddings.weight",
        ];
        Assert.All(expectedEmbeddings, key => Assert.Contains(key, names));
        Assert.Contains("encoder.layer.1.attention.self.pos_key_proj.bias", names);
        Assert.Contains("encoder.layer.1.attention.self.pos_query_proj.weight", names);
        Assert.DoesNotContain("encoder.LayerNorm.weight", names);
        Assert.DoesNotContain("embeddings.embed_proj.bias", names);

        using var scope = torch.NewDisposeScope();
        model.eval();
        Tensor ids = torch.tensor(new long[] { 1, 17, 33, 41, 2, 0, 0 }, 1, 7);
        Tensor mask = torch.tensor(new long[] { 1, 1, 1, 1, 1, 0, 0 }, 1, 7);
        Assert.Equal(new long[] { 1, 7, 32 }, model.call(ids, null, mask).LastHiddenState.shape);
    }

    [Fact]
    public void Padding_does_not_change_the_hidden_states_of_real_tokens()
    {
        torch.manual_seed(5);
        using var model = new DebertaV2Model(Tiny() with { HiddenDropoutProb = 0, AttentionProbsDropoutProb = 0 });
        model.eval();
        using var scope = torch.NewDisposeScope();
        Tensor ids = torch.tensor(new long[] { 1, 17, 33, 41, 2 }, 1, 5);
        Tensor padded = torch.tensor(new long[] { 1, 17, 33, 41, 2, 0, 0, 0 }, 1, 8);
        Tensor mask = torch.tensor(new long[] { 1, 1, 1, 1, 1, 0, 0, 0 }, 1, 8);
        Tensor alone = model.call(ids, null, null).LastHiddenState;
        Tensor withPadding = model.call(padded, null, mask).LastHiddenState.narrow(1, 0, 5);
        Assert.True(alone.allclose(withPadding, rtol: 0, atol: 1e-5));
    }

    [Fact]
    public void Lora_wraps_query_proj_and_value_proj_which_also_project_the_relative_embeddings()
    {
        torch.manual_seed(6);
        using var model = new DebertaV2Model(Tiny() with { HiddenDropoutProb = 0, AttentionProbsDropoutProb = 0 });
        model.eval();
        using var scope = torch.NewDisposeScope();
        Tensor ids = torch.tensor(new long[] { 1, 17, 33, 41, 2 }, 1, 5);
        Tensor before = model.call(ids, null, null).LastHiddenState.detach().clone();
        var wrapped = LoraInjector.Inject(model, new LoraOptions(Rank: 4, Dropout: 0));
        Assert.Equal(["encoder.layer.0.attention.self.query_proj", "encoder.layer.0.attention.self.value_proj",
            "encoder.layer.1.attention.self.query_proj", "encoder.layer.1.attention.self.value_proj"], wrapped.Order());
        Tensor after = model.call(ids, null, null).LastHiddenState; // lora_B starts at zero: same output
        Assert.True(before.allclose(after, rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void Head_rebuilds_from_its_options_and_its_keys_group_as_head_beside_the_encoder_groups()
    {
        var config = Tiny();
        using var model = new SequenceClassifier(new DebertaV2Model(config), DebertaV2Model.Registration.SequenceHead(config, 3));
        using var rebuilt = HeadRegistry.Create(nameof(ContextPoolerHead), config.HiddenSize, 3, model.Head.Options());
        Assert.True(JsonNode.DeepEquals(model.Head.Options(), rebuilt.Options()));
        Assert.True(ClassifierCheckpoint.IsHuggingFaceHead(model));

        var groups = ParameterGroups.Of(model).ToDictionary(e => e.Key, e => e.Group);
        Assert.Equal(ParameterGroups.Head, groups["pooler.dense.weight"]);
        Assert.Equal(ParameterGroups.Head, groups["classifier.bias"]);
        Assert.Equal(ParameterGroups.Embeddings, groups["deberta.encoder.rel_embeddings.weight"]);
        Assert.Equal(ParameterGroups.Embeddings, groups["deberta.encoder.LayerNorm.weight"]);
        Assert.Equal(ParameterGroups.Layer(1), groups["deberta.encoder.layer.1.attention.self.key_proj.bias"]);
    }

    [Theory]
    [InlineData("\"conv_kernel_size\": 3", "conv_kernel_size")]
    [InlineData("\"pos_att_type\": [\"c2p\", \"p2p\"]", "pos_att_type 'p2p'")]
    [InlineData("\"norm_rel_ebd\": \"batch_norm\"", "norm_rel_ebd")]
    [InlineData("\"pooler_hidden_size\": 16", "pooler_hidden_size")]
    [InlineData("\"hidden_act\": \"mish\"", "hidden_act")]
    [InlineData("\"type_vocab_size\": -1", "type_vocab_size")]
    [InlineData("\"position_buckets\": 256, \"max_relative_positions\": 64", "max_relative_positions")]
    public void Invalid_config_is_an_error_naming_the_field(string field, string expected)
    {
        string path = Path.Combine(Path.GetTempPath(), $"deberta-config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, $$"""{"model_type": "deberta-v2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37, "max_position_embeddings": 64, "vocab_size": 100, {{field}}}""");
        try
        {
            var error = Assert.Throws<SharpTuneException>(() => Architectures.LoadConfig(path));
            Assert.Contains(expected, error.Message);
            Assert.Contains(path, error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Pos_att_type_is_also_read_from_HF_older_pipe_separated_string()
    {
        string path = Path.Combine(Path.GetTempPath(), $"deberta-config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"model_type": "deberta-v2", "pos_att_type": "p2c|c2p"}""");
        try
        {
            var config = Assert.IsType<DebertaV2Config>(Architectures.LoadConfig(path));
            Assert.Equal(["p2c", "c2p"], config.PosAttType);
            Assert.Equal(768, config.HiddenSize); // deberta-v3-base defaults
            Assert.Equal(256, config.PositionBuckets);
            Assert.Equal("[\"p2c\",\"c2p\"]", config.ToJson()["pos_att_type"]!.ToJsonString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static DebertaV2Config Tiny() => new()
    {
        VocabSize = 100, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 37,
        MaxPositionEmbeddings = 64, PositionBuckets = 8, MaxRelativePositions = 16,
    };
}
