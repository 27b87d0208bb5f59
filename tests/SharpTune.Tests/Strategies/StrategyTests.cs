using SharpTune.Lora;
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Strategies;

public class StrategyTests
{
    private static (TrainingResult Result, SequenceClassifier Model) Train(string strategy, string head = "cls", int epochs = 1)
    {
        var model = TinyModels.Classifier(head);
        var options = new TrainingOptions { Epochs = epochs, BatchSize = 8, LearningRates = new(1e-3), WarmupRatio = 0 };
        var result = new Trainer(model, Strategy.Parse(strategy), options).Fit(TinyModels.ToyTask(32, seed: 1));
        return (result, model);
    }

    private static IEnumerable<AuditEntry> Changed(TrainingResult r, Func<AuditEntry, bool> where) => r.Audit.Entries.Where(where).Where(e => e.Changed);

    [Fact]
    public void Frozen_trains_only_the_head_and_leaves_every_backbone_tensor_bit_identical()
    {
        var (result, _) = Train("frozen");
        Assert.True(result.Audit.Passed, result.Audit.Summary);
        Assert.Equal(0, result.Audit.BackboneChanged);
        Assert.Equal(result.Audit.HeadTensors, result.Audit.HeadChanged);
        Assert.True(result.UsedFeatureCache);
        Assert.Equal("eval", result.Plan.Rows.First(r => r.Group == "layer 0").Mode);
    }

    [Fact]
    public void Full_trains_everything_but_a_pooler_the_head_does_not_read()
    {
        var (result, _) = Train("full");
        Assert.True(result.Audit.Passed, result.Audit.Summary);
        Assert.All(result.Audit.Entries.Where(e => e.Group != ParameterGroups.Pooler), e => Assert.True(e.Changed, e.Key));
        Assert.All(result.Audit.Entries.Where(e => e.Group == ParameterGroups.Pooler), e => Assert.False(e.Changed, e.Key));
        Assert.Equal("frozen (unused by head)", result.Plan.Rows.Single(r => r.Group == "pooler").Status);
    }

    [Fact]
    public void Full_with_the_pooled_head_trains_the_pooler_too()
    {
        var (result, _) = Train("full", head: "pooled");
        Assert.True(result.Audit.Passed, result.Audit.Summary);
        Assert.All(result.Audit.Entries, e => Assert.True(e.Changed, e.Key));
    }

    [Fact]
    public void Top_1_trains_the_last_layer_and_head_only()
    {
        var (result, _) = Train("top:1");
        Assert.True(result.Audit.Passed, result.Audit.Summary);
        Assert.Empty(Changed(result, e => e.Group is "embeddings" or "layer 0"));
        Assert.All(result.Audit.Entries.Where(e => e.Group is "layer 1" or "head"), e => Assert.True(e.Changed, e.Key));
    }

    [Fact]
    public void BitFit_changes_only_bias_terms_in_the_backbone()
    {
        var (result, _) = Train("bitfit");
        Assert.True(result.Audit.Passed, result.Audit.Summary);
        var backboneChanged = Changed(result, e => e.Group != "head").ToList();
        Assert.NotEmpty(backboneChanged);
        Assert.All(backboneChanged, e => Assert.EndsWith(".bias", e.Key));
    }

    [Fact]
    public void Lora_trains_adapters_and_head_while_base_weights_stay_bit_identical()
    {
        var (result, model) = Train("lora:r=4,alpha=8", epochs: 2);
        Assert.True(result.Audit.Passed, result.Audit.Summary);
        var adapters = result.Audit.Entries.Where(e => e.Group == ParameterGroups.Adapters).ToList();
        Assert.Equal(2 * 2 * 2, adapters.Count); // 2 layers × (query, value) × (A, B)
        Assert.All(adapters, e => Assert.True(e.Changed, e.Key));
        Assert.Empty(Changed(result, e => e.Group is not ("head" or "adapters")));
        Assert.Contains(model.named_parameters(), p => p.name == "bert.encoder.layer.0.attention.self.query.base_layer.weight");
    }

    [Fact]
    public void Gradual_unfreezing_opens_one_layer_from_the_top_per_epoch()
    {
        var (result, _) = Train("gradual", epochs: 2);
        Assert.True(result.Audit.Passed, result.Audit.Summary);
        Assert.Empty(Changed(result, e => e.Group is "embeddings" or "layer 0"));
        Assert.All(result.Audit.Entries.Where(e => e.Group is "layer 1" or "head"), e => Assert.True(e.Changed, e.Key));
    }

    [Fact]
    public void Parameter_table_counts_match_the_strategy()
    {
        using var model = TinyModels.Classifier("pooled");
        var plan = StrategyApplier.Apply(model, new FrozenStrategy());
        long head = 2 * 32 + 2;
        Assert.Equal(head, plan.TrainableParameters);
        Assert.Equal(model.parameters().Sum(p => p.numel()), plan.TotalParameters);
        Assert.Contains("| head |", plan.ToMarkdown());
        var top = StrategyApplier.Apply(model, new TopLayersStrategy(1));
        long layer1 = model.named_parameters().Where(p => p.name.StartsWith("bert.encoder.layer.1.")).Sum(p => p.parameter.numel());
        long pooler = 32 * 32 + 32;
        Assert.Equal(layer1 + pooler + head, top.TrainableParameters);
    }

    [Fact]
    public void Layer_wise_decay_lowers_the_rate_one_step_per_layer_down()
    {
        using var model = TinyModels.Classifier("pooled");
        var plan = StrategyApplier.Apply(model, new FullStrategy(), rates: new LearningRates(1e-4, HeadRate: 1e-3, LayerDecay: 0.5));
        var rates = new LearningRates(1e-4, 1e-3, 0.5);
        double Rate(string group) => rates.For(plan.Entries.First(e => e.Group == group), 2);
        Assert.Equal(1e-3, Rate("head"), 12);
        Assert.Equal(1e-4, Rate("pooler"), 12);
        Assert.Equal(1e-4, Rate("layer 1"), 12);
        Assert.Equal(5e-5, Rate("layer 0"), 12);
        Assert.Equal(2.5e-5, Rate("embeddings"), 12);
    }

    [Theory]
    [InlineData("top:0")]
    [InlineData("top:x")]
    [InlineData("lora:r=0")]
    [InlineData("lora:rank=8,beta=2")]
    [InlineData("freeze")]
    public void Bad_strategy_text_is_rejected_with_a_clear_message(string text)
    {
        var error = Assert.Throws<SharpTuneException>(() => Strategy.Parse(text));
        Assert.Contains(text.Split(':')[0] == "freeze" ? "allowed" : text.Split(':')[0], error.Message);
    }

    [Fact]
    public void Lora_merged_equals_unmerged_output()
    {
        using var model = TinyModels.Classifier("cls", dropout: 0);
        LoraInjector.Inject(model.Encoder, new LoraOptions(Rank: 4, Alpha: 8, Dropout: 0, TargetModules: ["query", "value", "intermediate.dense"]));
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.Contains("lora_B")) p.normal_(0, 0.5); // a trained adapter is not zero
        model.eval();
        using var ids = tensor(new long[] { 2, 10, 20, 30, 3, 2, 40, 50, 3, 0 }, 2, 5);
        using var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }, 2, 5);
        using var before = model.call(ids, null, mask);
        var merged = LoraInjector.Merge(model.Encoder);
        Assert.Equal(6, merged.Count);
        Assert.False(LoraInjector.HasAdapters(model));
        using var after = model.call(ids, null, mask);
        Assert.True(before.allclose(after, rtol: 0, atol: 1e-5), $"max diff {(before - after).abs().max().item<float>()}");
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains("lora_") || p.name.Contains("base_layer"));
    }

    [Fact]
    public void Lora_with_unknown_targets_names_them()
    {
        using var model = TinyModels.Classifier();
        var error = Assert.Throws<SharpTuneException>(() => LoraInjector.Inject(model.Encoder, new LoraOptions(TargetModules: ["qkv"])));
        Assert.Contains("qkv", error.Message);
    }
}
