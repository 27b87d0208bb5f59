using SharpTune.Checkpoints;
using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Tests.Data;
using SharpTune.Tests.Fixtures;
using TorchSharp;
using Xunit.Abstractions;

namespace SharpTune.Tests.Models;

/// <summary>ELECTRA (discriminator) against transformers' ElectraForSequenceClassification, plus what is ELECTRA's own.</summary>
public class ElectraTests
{
    private static ElectraConfig Tiny(int embeddingSize = 16) => new()
    {
        VocabSize = 99, EmbeddingSize = embeddingSize, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4,
        IntermediateSize = 37, MaxPositionEmbeddings = 64,
    };

    [Fact]
    public void Config_reads_embedding_size_and_defaults_to_HF_ElectraConfig()
    {
        var config = (ElectraConfig)Architectures.LoadConfig(Path.Combine(HfFixtures.Directory("electra"), "config.json"));
        Assert.Equal(16, config.EmbeddingSize);
        Assert.Equal(32, config.HiddenSize);
        var defaults = new ElectraConfig();
        Assert.Equal((128, 256, 4, 1024, 12), (defaults.EmbeddingSize, defaults.HiddenSize, defaults.NumAttentionHeads, defaults.IntermediateSize, defaults.NumHiddenLayers));
        Assert.Equal(16, config.ToJson()["embedding_size"]!.GetValue<int>());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void Config_validation_names_embedding_size(int embeddingSize)
    {
        using var files = new TempFiles();
        string path = files.Write("config.json", """{"model_type": "electra", "hidden_size": 32, "num_attention_heads": 4, "embedding_size": EMB}""".Replace("EMB", embeddingSize.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var error = Assert.Throws<SharpTuneException>(() => Architectures.LoadConfig(path));
        Assert.Contains("embedding_size", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Config_validation_names_num_attention_heads_when_it_does_not_divide_hidden_size()
    {
        var error = Assert.Throws<SharpTuneException>(() => (Tiny() with { NumAttentionHeads = 5 }).Validate("electra/config.json"));
        Assert.Contains("hidden_size (32) must be a multiple of num_attention_heads (5)", error.Message);
        Assert.Contains("electra/config.json", error.Message);
    }

    [Fact]
    public void Parameter_names_are_HF_ElectraModel_keys_and_the_projection_exists_only_when_widths_differ()
    {
        torch.manual_seed(0);
        using var projected = new ElectraModel(Tiny());
        using var same = new ElectraModel(Tiny(embeddingSize: 32));
        var names = projected.named_parameters().Select(p => p.name).ToList();
        Assert.Contains("embeddings.token_type_embeddings.weight", names);
        Assert.Contains("embeddings_project.weight", names);
        Assert.Contains("encoder.layer.1.attention.self.query.weight", names);
        Assert.DoesNotContain(names, n => n.StartsWith("pooler.", StringComparison.Ordinal));
        Assert.Equal(new long[] { 32, 16 }, projected.named_parameters().Single(p => p.name == "embeddings_project.weight").parameter.shape);
        Assert.DoesNotContain(same.named_parameters(), p => p.name.StartsWith("embeddings_project.", StringComparison.Ordinal));
        Assert.False(projected.HasPooler);
    }

    [Fact]
    public void Sequence_head_is_the_gelu_ClassificationHead_and_token_types_matter()
    {
        using var head = ElectraModel.Registration.SequenceHead(Tiny(), 3);
        Assert.IsType<ClassificationHead>(head);
        Assert.Equal("gelu", head.Options()["activation"]!.GetValue<string>());

        using var model = HfParity.LoadClassifier("electra");
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var @case = HfFixtures.Case("electra", "pair");
        var ids = HfParity.Ints(@case, "input_ids")!;
        var withTypes = model.Encoder.call(ids, HfParity.Ints(@case, "token_type_ids"), null).LastHiddenState;
        var withoutTypes = model.Encoder.call(ids, null, null).LastHiddenState;
        Assert.False(withTypes.allclose(withoutTypes), "a pair's token types must change the hidden states");
    }
}
