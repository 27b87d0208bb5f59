using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

public class AutocastTests
{
    [Fact]
    public void Autocast_sets_the_compute_type_only_inside_its_scope_and_restores_the_outer_one()
    {
        Assert.Null(Autocast.ComputeType);
        using (Autocast.Enter(Precision.Bf16))
        {
            Assert.Equal(ScalarType.BFloat16, Autocast.ComputeType);
            using (Autocast.Enter(Precision.Fp32)) Assert.Null(Autocast.ComputeType);
            Assert.Equal(ScalarType.BFloat16, Autocast.ComputeType);
        }
        Assert.Null(Autocast.ComputeType);
    }

    [Fact]
    public void Bf16_encoder_output_is_float32_and_close_to_fp32_but_not_identical()
    {
        torch.manual_seed(3);
        using var model = new BertModel(TinyModels.Config(dropout: 0));
        model.eval();
        using var ids = torch.randint(4, 99, [3, 16], dtype: ScalarType.Int64);
        using var noGrad = torch.no_grad();
        EncoderOutput reference = model.call(ids, null, null);
        EncoderOutput mixed;
        using (Autocast.Enter(Precision.Bf16)) mixed = model.call(ids, null, null);

        Assert.Equal(ScalarType.Float32, mixed.LastHiddenState.dtype);
        Assert.Equal(ScalarType.Float32, mixed.PooledOutput!.dtype);
        double maxDiff = (mixed.LastHiddenState - reference.LastHiddenState).abs().max().item<float>();
        double cosine = nn.functional.cosine_similarity(mixed.LastHiddenState.flatten(0, 1), reference.LastHiddenState.flatten(0, 1), dim: 1).min().item<float>();
        Assert.True(maxDiff > 0, "bf16 must actually run: the outputs were bit-identical to fp32");
        Assert.True(maxDiff < 0.1, $"max |bf16 - fp32| = {maxDiff}");
        Assert.True(cosine > 0.999, $"min token cosine = {cosine}");
    }

    [Fact]
    public void Bf16_training_keeps_weights_and_gradients_float32_learns_and_passes_the_freeze_audit()
    {
        var model = TinyModels.Classifier(dropout: 0);
        var options = new TrainingOptions { Epochs = 4, BatchSize = 8, LearningRates = new(3e-3), WarmupRatio = 0, Precision = Precision.Bf16 };
        var train = TinyModels.ToyTask(64, seed: 1);
        double before = Evaluator.Run(model, train, 16, CPU, precision: Precision.Bf16).Loss;

        TrainingResult result = new Trainer(model, Strategy.Parse("top:1"), options).Fit(train);

        Assert.True(result.Audit.Passed, string.Join("; ", result.Audit.Violations.Select(v => v.Key)));
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        double after = Evaluator.Run(model, train, 16, CPU, precision: Precision.Bf16).Loss;
        Assert.True(after < before, $"loss {before} -> {after}");
    }

    [Theory]
    [InlineData("lora:r=4")]
    [InlineData("lora:r=4,targets=query+key+value+dense")]
    public void Bf16_training_with_lora_adapters_runs_and_passes_the_freeze_audit(string strategy)
    {
        // Wrapped projections must compute in the same dtype as plain ones: SDPA rejects mixed query/key/value.
        var model = TinyModels.Classifier(dropout: 0);
        var options = new TrainingOptions { Epochs = 1, BatchSize = 8, LearningRates = new(1e-3), Precision = Precision.Bf16 };
        TrainingResult result = new Trainer(model, Strategy.Parse(strategy), options).Fit(TinyModels.ToyTask(32, seed: 2));
        Assert.True(result.Audit.Passed, result.Audit.Summary);
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
    }
}
