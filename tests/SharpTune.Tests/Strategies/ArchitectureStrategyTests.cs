using SharpTune.Checkpoints;
using SharpTune.Strategies;
using SharpTune.Tests.Fixtures;
using SharpTune.Training;

namespace SharpTune.Tests.Strategies;

/// <summary>
/// Every strategy on every architecture (the Python-saved tiny task checkpoints of the fixtures, with their own HF
/// heads): the parameter table sees the architecture's groups, and the freeze audit proves that exactly the
/// promised tensors changed.
/// </summary>
public sealed class ArchitectureStrategyTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string architecture in HfFixtures.Architectures)
            foreach (string strategy in new[] { "full", "frozen", "top:1", "bitfit", "lora", "gradual" })
                data.Add(architecture, strategy);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Strategy_trains_exactly_what_it_says_on_the_architecture(string architecture, string strategyName)
    {
        var (model, _, _) = ClassifierCheckpoint.Load(HfFixtures.Directory(architecture));
        using var _ = model;
        var strategy = Strategy.Parse(strategyName);
        var options = new TrainingOptions { Epochs = strategyName == "gradual" ? 2 : 1, BatchSize = 8, LearningRates = new(1e-3), WarmupRatio = 0 };
        // The toy task's token ids (2..99) exist in every fixture vocabulary; three labels as the checkpoints have.
        var toy = TinyModels.ToyTask(24, seed: 3);
        var data = new TaskDataset(TaskType.SingleLabel, 3, toy.InputIds, toy.TokenTypeIds,
            toy.Labels!.Select((l, i) => i % 3 == 2 ? 2L : l).ToList(), labelNames: ["neg", "neu", "pos"]);
        var result = new Trainer(model, strategy, options).Fit(data);

        Assert.True(result.Audit.Passed, $"{architecture}/{strategyName}: {result.Audit.Summary}");
        var groups = result.Plan.Rows.Select(r => r.Group).ToList();
        Assert.Contains(ParameterGroups.Embeddings, groups);
        Assert.Contains(ParameterGroups.Layer(0), groups);
        Assert.Contains(ParameterGroups.Layer(1), groups);
        Assert.Contains(ParameterGroups.Head, groups);
        Assert.True(result.Audit.HeadChanged > 0, $"{architecture}/{strategyName}: the head did not train");
        switch (strategyName)
        {
            case "frozen":
                Assert.Equal(0, result.Audit.BackboneChanged);
                break;
            case "top:1":
                Assert.DoesNotContain(result.Audit.Entries, e => e.Changed && e.Group is ParameterGroups.Embeddings or "layer 0");
                Assert.Contains(result.Audit.Entries, e => e.Changed && e.Group == "layer 1");
                break;
            case "bitfit":
                Assert.DoesNotContain(result.Audit.Entries, e => e.Changed && e.Group != ParameterGroups.Head && !e.Key.EndsWith(".bias", StringComparison.Ordinal));
                break;
            case "lora":
                // Merged adapters change exactly the architecture's default targets (PEFT's table), nothing else in the encoder.
                var targets = model.Encoder.Architecture.LoraTargets;
                Assert.All(result.Audit.Entries.Where(e => e.Changed && e.Group != ParameterGroups.Head),
                    e => Assert.Contains(targets, t => e.Key.Contains("." + t + ".", StringComparison.Ordinal)));
                break;
            default:
                Assert.True(result.Audit.BackboneChanged > 0);
                break;
        }
    }
}

/// <summary>LoRA adapters are created where the wrapped layer lives (a model moved to a GPU before LoRA is injected).</summary>
public sealed class LoraPlacementTests
{
    [Fact]
    public void Adapters_are_created_on_the_device_and_dtype_of_the_wrapped_layer()
    {
        // The meta device stands in for a GPU: tensors there have a device but no storage.
        using var layer = TorchSharp.torch.nn.Linear(8, 4, device: TorchSharp.torch.device("meta"), dtype: TorchSharp.torch.ScalarType.Float64);
        using var lora = new SharpTune.Lora.LoraLinear(layer, new SharpTune.Lora.LoraOptions(Rank: 2));
        Assert.All(lora.parameters(), p =>
        {
            Assert.Equal(TorchSharp.DeviceType.META, p.device_type);
            Assert.Equal(TorchSharp.torch.ScalarType.Float64, p.dtype);
        });
    }
}
