using SharpTune.Models;
using SharpTune.Native;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

/// <summary>
/// Where the time of one full fine-tuning step goes (MiniLM, batch 32 × 128, fp32 and bf16 side by side): the step's
/// phases timed inside real steps (forward, loss, backward, gradient norm and clipping, AdamW, zero_grad, dispose), and
/// the forward and backward of each module kind timed alone at the step's shapes with the model's own weights
/// (× layers), so that their sum can be held against the measured forward and backward. Each precision twice: with
/// libtorch's dropout and attention (before <see cref="FastDropout"/>) and with SharpTune's (after).
/// </summary>
internal static class StepProfile
{
    public sealed record Phase(string Name, double[] Milliseconds, string Note = "");

    /// <summary>The profile's columns: a precision, with libtorch's dropout and attention or SharpTune's.</summary>
    public static readonly (string Name, Precision Precision, bool LibTorch)[] Columns =
        [("fp32 before", Precision.Fp32, true), ("fp32 after", Precision.Fp32, false), ("bf16 before", Precision.Bf16, true), ("bf16 after", Precision.Bf16, false)];

    public static List<Phase> Run(SequenceClassifier classifier, Tensor ids, Tensor types, Tensor mask, Tensor labels, int runs)
    {
        Precision[] precisions = Columns.Select(c => c.Precision).ToArray();
        var phases = new List<Phase>();
        classifier.train();
        TrainingPlan plan = StrategyApplier.Apply(classifier, new FullStrategy(), rates: new LearningRates(2e-5));
        using var optimizer = new GroupedAdamW(0.01);
        optimizer.AddTrainable(plan, new LearningRates(2e-5), classifier.Encoder.Config.NumHiddenLayers);

        // 1. The real step, phase by phase (libtorch on the CPU is synchronous: a phase's wall time is its own).
        string[] stepPhases = ["batch to device", "forward (encoder + head)", "loss", "backward", "gradient norm + clipping", "AdamW step", "zero_grad", "dispose + GC"];
        var stepTimes = precisions.Select(_ => stepPhases.Select(_ => new List<double>()).ToArray()).ToArray();
        for (int round = -1; round < runs; round++)
            for (int p = 0; p < precisions.Length; p++)
            {
                FastDropout.UseLibTorch = Columns[p].LibTorch;
                double last = Bench.Now();
                double Lap() { double now = Bench.Now(), ms = (now - last) * 1000; last = now; return ms; }
                var laps = new double[stepPhases.Length];
                var scope = NewDisposeScope();
                Tensor input = ids.to(CPU), typeIds = types.to(CPU), attention = mask.to(CPU), targets = labels.to(CPU);
                laps[0] = Lap();
                Tensor logits;
                using (Autocast.Enter(precisions[p])) logits = classifier.call(input, typeIds, attention);
                laps[1] = Lap();
                Tensor loss = TaskType.SingleLabel.Loss(logits, targets);
                laps[2] = Lap();
                loss.backward();
                laps[3] = Lap();
                optimizer.ClipGradients(1.0, optimizer.GradientNorm());
                laps[4] = Lap();
                optimizer.Step();
                laps[5] = Lap();
                optimizer.ZeroGrad();
                laps[6] = Lap();
                scope.Dispose();
                GC.Collect(0);
                laps[7] = Lap();
                if (round >= 0) for (int i = 0; i < laps.Length; i++) stepTimes[p][i].Add(laps[i]);
            }
        for (int i = 0; i < stepPhases.Length; i++)
            phases.Add(new Phase("step: " + stepPhases[i], precisions.Select((_, p) => Median(stepTimes[p][i])).ToArray()));
        phases.Add(new Phase("step: total", precisions.Select((_, p) => Enumerable.Range(0, stepPhases.Length).Sum(i => Median(stepTimes[p][i]))).ToArray(), "sum of the phases' medians"));

        // 2. Each module kind alone, forward and forward + backward, with layer 0's weights.
        var modules = classifier.named_modules().ToDictionary(m => m.name, m => m.module);
        string layer = classifier.EncoderPrefix + "encoder.layer.0.";
        int layers = classifier.Encoder.Config.NumHiddenLayers;
        long batch = ids.shape[0], sequence = ids.shape[1], hidden = classifier.Encoder.Config.HiddenSize;
        int heads = classifier.Encoder.Config.NumAttentionHeads;
        nn.Module<Tensor, Tensor> Linear(string name) => (nn.Module<Tensor, Tensor>)modules[layer + name];
        var layerNorm = (nn.Module<Tensor, Tensor>)modules[layer + "output.LayerNorm"];
        var embeddings = (nn.Module<Tensor, Tensor?, Tensor>)modules[classifier.EncoderPrefix + "embeddings"];
        using var keyMask = mask.to_type(ScalarType.Bool).unsqueeze(1).unsqueeze(2);

        // Inputs made once, outside the timed calls: a fresh leaf would time the random generator too.
        using var hiddenPlain = torch.randn(batch, sequence, hidden);
        using var hiddenLeaf = torch.randn(batch, sequence, hidden).requires_grad_(true);
        using var branchPlain = torch.randn(batch, sequence, hidden);
        using var branchLeaf = torch.randn(batch, sequence, hidden).requires_grad_(true);
        using var branchPlainBf16 = branchPlain.to_type(ScalarType.BFloat16);
        using var branchLeafBf16 = branchPlain.to_type(ScalarType.BFloat16).requires_grad_(true);
        long headDim = hidden / heads;
        var attentionInputs = new Dictionary<(ScalarType, bool), Tensor[]>();
        foreach (var type in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            foreach (bool grad in new[] { false, true })
                attentionInputs[(type, grad)] = Enumerable.Range(0, 3).Select(_ => torch.randn(batch, heads, sequence, headDim).to_type(type).requires_grad_(grad)).ToArray();
        Tensor Hidden(bool grad) => grad ? hiddenLeaf : hiddenPlain;
        var kinds = new (string Name, int PerStep, Func<Precision, bool, Tensor> Forward, string Note)[]
        {
            ("embeddings (lookup, sum, LayerNorm)", 1, (_, _) => embeddings.call(ids, types), "once per step"),
            ("attention projections (Q, K, V, output)", layers, (_, grad) =>
            {
                Tensor x = Hidden(grad);
                Tensor sum = Autocast.Linear(Linear("attention.self.query"), x).to_type(ScalarType.Float32);
                foreach (string name in new[] { "attention.self.key", "attention.self.value", "attention.output.dense" })
                    sum = Scalars.Add(sum, Autocast.Linear(Linear(name), x).to_type(ScalarType.Float32));
                return sum;
            }, "4 Linear H×H"),
            ("scaled dot-product attention", layers, (precision, grad) =>
            {
                Tensor[] qkv = attentionInputs[(precision == Precision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32, grad)];
                return Attention.ScaledDotProduct(qkv[0], qkv[1], qkv[2], keyMask, 0.1, training: true);
            }, "with attention-probability dropout 0.1"),
            ("feed-forward (dense, GELU, dense)", layers, (_, grad) =>
            {
                Tensor x = Hidden(grad);
                Tensor expanded = nn.functional.gelu(Autocast.Linear(Linear("intermediate.dense"), x));
                return Autocast.Linear(Linear("output.dense"), expanded);
            }, "Linear H×4H and 4H×H"),
            ("dropout + residual + LayerNorm", 2 * layers, (precision, grad) =>
            {
                Tensor x = Hidden(grad);
                Tensor branch = precision == Precision.Bf16 ? (grad ? branchLeafBf16 : branchPlainBf16) : grad ? branchLeaf : branchPlain;
                return layerNorm.call(Scalars.Add(FastDropout.Apply(branch, 0.1, training: true), x));
            }, "twice per layer"),
        };
        foreach (var kind in kinds)
        {
            double[] forward = new double[precisions.Length], backward = new double[precisions.Length];
            for (int p = 0; p < precisions.Length; p++)
            {
                Precision precision = precisions[p];
                FastDropout.UseLibTorch = Columns[p].LibTorch;
                forward[p] = kind.PerStep * 1000 * Bench.Median(runs, 1, () =>
                {
                    using var scope = NewDisposeScope();
                    using var noGrad = torch.no_grad();
                    using var cast = Autocast.Enter(precision);
                    kind.Forward(precision, false);
                });
                double both = kind.PerStep * 1000 * Bench.Median(runs, 1, () =>
                {
                    using var scope = NewDisposeScope();
                    Tensor output;
                    using (Autocast.Enter(precision)) output = kind.Forward(precision, true);
                    output.to_type(ScalarType.Float32).sum().backward();
                });
                backward[p] = both - forward[p];
                optimizer.ZeroGrad();
            }
            phases.Add(new Phase($"forward: {kind.Name}", forward, $"× {kind.PerStep}; {kind.Note}"));
            phases.Add(new Phase($"backward: {kind.Name}", backward, "(forward + backward) − forward"));
        }
        FastDropout.UseLibTorch = false;
        foreach (var inputs in attentionInputs.Values) foreach (var t in inputs) t.Dispose();
        return phases;
    }

    private static double Median(List<double> values) => Bench.Median(values.ToArray());
}
