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
public class DebertaV2Tests(ITestOutputHelper output)
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
    public void Bare_encoder_loads_from_the_task_checkpoint_and_matches_transformers()
    {
        var config = Architectures.LoadConfig(ConfigPath);
        string weights = Path.Combine(HfFixtures.Directory(Architecture), "model.safetensors");
        var tensors = SafeTensors.Load(weights);
        try
        {
            var (encoder, unused) = PretrainedEncoder.LoadEncoder(config, tensors, weights);
            using var _encoder = encoder;
            encoder.eval();
            Assert.IsType<DebertaV2Model>(encoder);
            Assert.False(encoder.HasPooler);
            Assert.Equal(["classifier.bias", "classifier.weight", "pooler.dense.bias", "pooler.dense.weight"], unused);

            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var testCase = HfFixtures.Case(Architecture, "pair");
            var (ids, types, mask) = Inputs(testCase);
            EncoderOutput encoded = encoder.call(ids, types, mask);
            double diff = AssertClose(testCase["last_hidden_state"], encoded.LastHiddenState.squeeze(0), Tolerance, "pair last_hidden_state");
            Assert.Null(encoded.PooledOutput);
            // Without a mask or token types the model sees all ones and ignores types (type_vocab_size 0): same result.
            EncoderOutput unmasked = encoder.call(ids, null, null);
            AssertClose(testCase["last_hidden_state"], unmasked.LastHiddenState.squeeze(0), Tolerance, "pair without mask");
            output.WriteLine($"bare encoder, pair: max |diff| hidden {diff:E2}");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Fact]
    public void Bf16_forward_runs_and_stays_close_to_fp32()
    {
        var (model, _, _) = ClassifierCheckpoint.Load(HfFixtures.Directory(Architecture));
        using var _model = model;
        var testCase = HfFixtures.Case(Architecture, "padded_batch");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (ids, types, mask) = Inputs(testCase);
        Tensor reference = model.call(ids, types, mask);
        Tensor mixed;
        using (Autocast.Enter(Precision.Bf16)) mixed = model.call(ids, types, mask);
        Assert.Equal(ScalarType.Float32, mixed.dtype);
        double diff = (mixed - reference).abs().max().item<float>();
        output.WriteLine($"bf16 vs fp32 logits: max |diff| {diff:E2}");
        Assert.True(diff > 0, "bf16 must actually run: the logits were bit-identical to fp32");
        Assert.True(diff < 0.1, $"max |bf16 - fp32| = {diff}");
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

    /// <summary>input_ids, token_type_ids and attention_mask of a case as [batch, sequence] int64 (batch 1 for one text).</summary>
    private static (Tensor Ids, Tensor Types, Tensor Mask) Inputs(JsonObject testCase) =>
        (Matrix(testCase["input_ids"]), Matrix(testCase["token_type_ids"]), Matrix(testCase["attention_mask"]));

    private static Tensor Matrix(JsonNode? node)
    {
        var rows = node!.AsArray();
        if (rows.Count > 0 && rows[0] is JsonArray)
            return torch.tensor(rows.SelectMany(r => HfFixtures.Longs(r)).ToArray(), rows.Count, rows[0]!.AsArray().Count);
        long[] values = HfFixtures.Longs(node);
        return torch.tensor(values, 1, values.Length);
    }

    private static Tensor Expected(JsonNode? node, long[] shape) => torch.tensor(HfFixtures.Floats(node)).reshape(shape);

    /// <summary>Asserts max |actual − expected| ≤ tolerance and returns it.</summary>
    private static double AssertClose(JsonNode? expected, Tensor actual, double tolerance, string what)
    {
        using var reference = Expected(expected, actual.shape);
        double diff = (actual.detach() - reference).abs().max().item<float>();
        Assert.True(diff <= tolerance, $"{what}: max |diff| {diff:E2} > {tolerance:E0}");
        return diff;
    }
}
