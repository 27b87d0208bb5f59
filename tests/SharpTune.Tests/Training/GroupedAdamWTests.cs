using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

/// <summary>SharpTune's AdamW against TorchSharp's <c>torch.optim.AdamW</c> (PyTorch's algorithm) on the same gradients.</summary>
public sealed class GroupedAdamWTests
{
    private static double Loss(SequenceClassifier model, Tensor ids, Tensor targets)
    {
        using var scope = NewDisposeScope();
        Tensor loss = nn.functional.cross_entropy(model.call(ids, null, null), targets);
        loss.backward();
        return loss.item<float>();
    }

    [Fact]
    public void Steps_equal_torch_AdamW_with_decay_groups_and_a_changing_rate()
    {
        using var ours = TinyModels.Classifier(seed: 3, dropout: 0);
        using var reference = TinyModels.Classifier(seed: 3, dropout: 0);
        ours.eval();
        reference.eval();
        TrainingPlan plan = StrategyApplier.Apply(ours, new FullStrategy(), rates: new LearningRates(1e-2));
        var decaying = plan.Trainable.Where(e => e.DecaysWeight).Select(e => e.Key).ToHashSet();
        Assert.NotEmpty(decaying);
        Assert.True(decaying.Count < plan.Trainable.Count());

        using var optimizer = new GroupedAdamW(weightDecay: 0.05);
        optimizer.AddTrainable(plan, new LearningRates(1e-2), layers: 2);
        var parameters = reference.named_parameters().ToList();
        using var torchAdam = torch.optim.AdamW(
        [
            new TorchSharp.Modules.AdamW.ParamGroup(parameters.Where(p => decaying.Contains(p.name)).Select(p => p.parameter), lr: 1e-2, weight_decay: 0.05),
            new TorchSharp.Modules.AdamW.ParamGroup(parameters.Where(p => !decaying.Contains(p.name)).Select(p => p.parameter), lr: 1e-2, weight_decay: 0),
        ], lr: 1e-2);

        using var ids = torch.tensor(new long[] { 2, 7, 9, 11, 3, 2, 20, 30, 3, 0 }, 2, 5);
        using var targets = torch.tensor(new long[] { 0, 1 });
        double[] factors = [1, 0.5, 0.25, 1, 0.75, 0.1];
        foreach (double factor in factors)
        {
            Loss(ours, ids, targets);
            Loss(reference, ids, targets);
            optimizer.SetSchedule(factor);
            foreach (var group in torchAdam.ParamGroups) group.LearningRate = 1e-2 * factor;
            optimizer.Step();
            torchAdam.step();
            optimizer.ZeroGrad();
            torchAdam.zero_grad();
        }

        var mine = ours.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var start = TinyModels.Classifier(seed: 3, dropout: 0);
        var initial = start.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, expected) in parameters)
        {
            Assert.True(expected.allclose(mine[name], rtol: 0, atol: 1e-6), $"{name}: max difference {(expected - mine[name]).abs().max().item<float>()}");
            if (plan.Trainable.Any(e => e.Key == name && !name.Contains("LayerNorm") && !name.StartsWith("embeddings.token_type", StringComparison.Ordinal)))
                Assert.False(expected.allclose(initial[name]), $"{name} did not move: the comparison would prove nothing");
        }
        var states = optimizer.States();
        Assert.All(states.Values, s => Assert.Equal(factors.Length, s.Step));
    }

    [Fact]
    public void Clipping_with_the_measured_norm_equals_torch_clip_grad_norm()
    {
        using var ours = TinyModels.Classifier(seed: 4, dropout: 0);
        using var reference = TinyModels.Classifier(seed: 4, dropout: 0);
        ours.eval();
        reference.eval();
        TrainingPlan plan = StrategyApplier.Apply(ours, new FullStrategy(), rates: new LearningRates(1e-2));
        using var optimizer = new GroupedAdamW(weightDecay: 0);
        optimizer.AddTrainable(plan, new LearningRates(1e-2), layers: 2);
        using var ids = torch.tensor(new long[] { 2, 7, 9, 11, 3, 2, 20, 30, 3, 0 }, 2, 5);
        using var targets = torch.tensor(new long[] { 0, 1 });
        Loss(ours, ids, targets);
        Loss(reference, ids, targets);

        double norm = optimizer.GradientNorm();
        optimizer.ClipGradients(norm / 4, norm);
        double torchNorm = nn.utils.clip_grad_norm_(reference.parameters(), norm / 4);
        Assert.Equal(norm, torchNorm, 1e-5 * norm);
        Assert.Equal(norm / 4, optimizer.GradientNorm(), 1e-5 * norm);
        var theirs = reference.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        int compared = 0;
        foreach (var (name, parameter) in ours.named_parameters())
        {
            if (parameter.grad is not { } grad) { Assert.Null(theirs[name].grad); continue; } // e.g. the pooler, unused by the cls head
            Assert.True(grad.allclose(theirs[name].grad!, rtol: 1e-6, atol: 1e-9), name);
            compared++;
        }
        Assert.True(compared > 10);

        optimizer.ClipGradients(norm, norm / 4); // below the limit: unchanged
        Assert.Equal(norm / 4, optimizer.GradientNorm(), 1e-5 * norm);
    }
}
