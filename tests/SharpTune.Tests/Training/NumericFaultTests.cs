using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

public class NumericFaultTests
{
    /// <summary>
    /// A linear head on [CLS] that goes wrong on its <c>faultAt</c>-th training call: NaN logits, or (gradientOnly)
    /// finite logits whose backward pass gives <c>trap</c> a NaN gradient (d sqrt(x)/dx at 0 is infinite, times 0).
    /// </summary>
    private sealed class FaultyHead : Head
    {
#pragma warning disable IDE1006 // field names are checkpoint key segments
        private readonly Linear dense;
        private readonly Parameter trap;
#pragma warning restore IDE1006
        private readonly int faultAt;
        private readonly bool gradientOnly;
        private int calls;

        public FaultyHead(int hidden, int outputs, int faultAt, bool gradientOnly) : base("faulty")
        {
            dense = nn.Linear(hidden, outputs);
            trap = nn.Parameter(torch.ones(1));
            this.faultAt = faultAt;
            this.gradientOnly = gradientOnly;
            Outputs = outputs;
            RegisterComponents();
        }

        public override HeadInput Input => HeadInput.FirstToken;
        public override int Outputs { get; }

        public override Tensor forward(Tensor features, Tensor? attentionMask)
        {
            Tensor logits = dense.call(features);
            if (!training || ++calls != faultAt) return logits;
            return gradientOnly ? logits + (trap * 0).sqrt() : logits * double.NaN;
        }
    }

    private sealed class Snapshots(SequenceClassifier model) : IProgress<TrainingEvent>
    {
        public Dictionary<int, Dictionary<string, Tensor>> AfterStep { get; } = [];

        public void Report(TrainingEvent value)
        {
            if (value is not StepEvent step) return;
            using var noGrad = no_grad();
            AfterStep[step.Step] = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        }
    }

    private static (TrainingResult Result, Snapshots Snapshots, SequenceClassifier Model) Train(int faultAt, bool gradientOnly)
    {
        torch.manual_seed(0);
        var config = TinyModels.Config();
        var model = new SequenceClassifier(new BertModel(config), new FaultyHead(config.HiddenSize, 2, faultAt, gradientOnly));
        var snapshots = new Snapshots(model);
        // 64 examples in batches of 16: 4 steps an epoch.
        var options = new TrainingOptions { Epochs = 3, BatchSize = 16, LearningRates = new(1e-3) };
        var result = new Trainer(model, new FullStrategy(), options, snapshots).Fit(TinyModels.ToyTask(64, seed: 3));
        return (result, snapshots, model);
    }

    // The head's prefix is the task model's business (classifier., sharptune_head. …); the tensor is the head's trap.
    private static string TrapKey(SequenceClassifier model) => model.named_parameters().Single(p => p.name.EndsWith(".trap", StringComparison.Ordinal)).name;

    private static void AssertHoldsWeightsOf(Dictionary<string, Tensor> expected, SequenceClassifier model)
    {
        foreach (var (name, parameter) in model.named_parameters())
            Assert.True(parameter.detach().allclose(expected[name], rtol: 0, atol: 0), $"{name} differs from the weights after the last good step");
    }

    [Fact]
    public void A_NaN_loss_stops_at_its_step_and_keeps_the_last_good_weights()
    {
        var (result, snapshots, model) = Train(faultAt: 3, gradientOnly: false);
        using var _ = model;
        Assert.Equal(new NumericFault(0, 3, 2, double.NaN, null), result.Fault);
        Assert.Equal("the loss is NaN at step 3 (epoch 1, batch 3); the weights are those after step 2", result.Stopped);
        Assert.Equal([1, 2], snapshots.AfterStep.Keys.Order());
        AssertHoldsWeightsOf(snapshots.AfterStep[2], model);
    }

    [Fact]
    public void A_NaN_gradient_stops_at_its_step_naming_the_tensor()
    {
        // The fifth training forward is the first batch of the second epoch; its loss is finite.
        var (result, snapshots, model) = Train(faultAt: 5, gradientOnly: true);
        using var _ = model;
        string trap = TrapKey(model);
        Assert.NotNull(result.Fault);
        Assert.Equal((1, 5, 0, trap), (result.Fault.Epoch, result.Fault.Step, result.Fault.Batch, result.Fault.Tensor));
        Assert.True(double.IsNaN(result.Fault.Value));
        Assert.StartsWith($"the gradient of {trap} is not finite (total norm NaN) at step 5 (epoch 2, batch 1)", result.Stopped);
        Assert.Equal(4, snapshots.AfterStep.Keys.Max());
        AssertHoldsWeightsOf(snapshots.AfterStep[4], model);
    }

    [Fact]
    public void Without_clipping_a_NaN_gradient_is_still_caught()
    {
        torch.manual_seed(0);
        var config = TinyModels.Config();
        using var model = new SequenceClassifier(new BertModel(config), new FaultyHead(config.HiddenSize, 2, faultAt: 2, gradientOnly: true));
        var options = new TrainingOptions { Epochs = 1, BatchSize = 16, LearningRates = new(1e-3), MaxGradNorm = null };
        var result = new Trainer(model, new FullStrategy(), options).Fit(TinyModels.ToyTask(64, seed: 3));
        Assert.Equal(TrapKey(model), result.Fault?.Tensor);
        Assert.Equal(2, result.Fault!.Step);
        Assert.All(model.parameters(), p => Assert.True(p.detach().isfinite().all().item<bool>()));
    }
}
