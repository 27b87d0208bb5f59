using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

public class BertModelTests
{
    [Fact]
    public void Parameter_names_equal_the_HF_BertModel_keys()
    {
        torch.manual_seed(0);
        using var model = new BertModel(TinyModels.Config());
        var names = model.named_parameters().Select(p => p.name).ToHashSet();
        var expected = new List<string>
        {
            "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
            "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "pooler.dense.weight", "pooler.dense.bias",
        };
        for (int i = 0; i < 2; i++)
            foreach (string suffix in new[]
            {
                "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm",
            })
                expected.AddRange([$"encoder.layer.{i}.{suffix}.weight", $"encoder.layer.{i}.{suffix}.bias"]);
        Assert.Equal(expected.Order(), names.Order());
    }

    [Fact]
    public void Padding_does_not_change_the_hidden_states_of_real_tokens()
    {
        torch.manual_seed(1);
        using var model = new BertModel(TinyModels.Config());
        model.eval();
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(new long[] { 2, 17, 33, 41, 3 }, 1, 5);
        var padded = torch.tensor(new long[] { 2, 17, 33, 41, 3, 0, 0, 0 }, 1, 8);
        var mask = torch.tensor(new long[] { 1, 1, 1, 1, 1, 0, 0, 0 }, 1, 8);
        var alone = model.call(ids, null, null);
        var withPadding = model.call(padded, null, mask);
        var realTokens = withPadding.LastHiddenState.narrow(1, 0, 5);
        Assert.True(alone.LastHiddenState.allclose(realTokens, rtol: 0, atol: 1e-5));
        Assert.True(alone.PooledOutput!.allclose(withPadding.PooledOutput!, rtol: 0, atol: 1e-5));
        Assert.Equal(new long[] { 1, 5, 32 }, alone.LastHiddenState.shape);
    }

    [Fact]
    public void Too_long_input_names_max_position_embeddings()
    {
        using var model = new BertModel(TinyModels.Config());
        using var ids = torch.zeros(1, 65, ScalarType.Int64);
        var error = Assert.Throws<SharpTuneException>(() => model.call(ids, null, null));
        Assert.Contains("max_position_embeddings", error.Message);
        Assert.StartsWith("Input has 65 tokens", error.Message);
        using var longest = torch.zeros(2, 64, ScalarType.Int64);
        using var scope = torch.NewDisposeScope();
        Assert.Equal([2L, 64L, 32L], model.call(longest, null, null).LastHiddenState.shape);
    }

    [Fact]
    public void Roberta_positions_start_after_the_padding_id_so_its_longest_input_is_two_less_than_the_table()
    {
        BertConfig tiny = TinyModels.Config();
        var config = new RobertaConfig
        {
            VocabSize = tiny.VocabSize, HiddenSize = tiny.HiddenSize, NumHiddenLayers = tiny.NumHiddenLayers, NumAttentionHeads = tiny.NumAttentionHeads,
            IntermediateSize = tiny.IntermediateSize, MaxPositionEmbeddings = 66,
        };
        Assert.Equal(64, config.MaxInputLength);
        using var model = new RobertaModel(config);
        using var scope = torch.NewDisposeScope();
        Assert.Equal([1L, 64L, 32L], model.call(torch.full([1, 64], 5, ScalarType.Int64), null, null).LastHiddenState.shape);
        var error = Assert.Throws<SharpTuneException>(() => model.call(torch.full([1, 65], 5, ScalarType.Int64), null, null));
        Assert.Equal("Input has 65 tokens, more than the model's max_position_embeddings (66) allow (positions start at 2: at most 64 tokens).", error.Message);
    }
}
