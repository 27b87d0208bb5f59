using SharpTune.Native;
using SharpTune.Strategies;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>One trainable tensor's AdamW state: its step count and first and second moments.</summary>
internal sealed class AdamState(Tensor expAvg, Tensor expAvgSq) : IDisposable
{
    /// <summary>Steps this tensor has taken (tensors opened by gradual unfreezing start later).</summary>
    public long Step { get; set; }
    /// <summary>The running mean of the gradient.</summary>
    public Tensor ExpAvg { get; } = expAvg;
    /// <summary>The running mean of the squared gradient.</summary>
    public Tensor ExpAvgSq { get; } = expAvgSq;

    public void Dispose()
    {
        ExpAvg.Dispose();
        ExpAvgSq.Dispose();
    }
}

/// <summary>
/// AdamW over the trainable tensors only, in groups of equal learning rate and weight decay: decay on weight
/// matrices, none on biases and LayerNorms. The schedule scales every group's base rate. The update is PyTorch's
/// (<c>torch.optim.AdamW</c>, single-tensor form, betas 0.9/0.999, eps 1e-8): decoupled decay, moments, bias
/// corrections, <c>p −= lr/bc1 · m / (√v/√bc2 + eps)</c>. It is SharpTune's own rather than TorchSharp's because
/// TorchSharp's step passes implicitly converted scalars to libtorch (see <see cref="Scalars"/>): here every number
/// is a scalar held for exactly the call that reads it.
/// </summary>
internal sealed class GroupedAdamW(double weightDecay) : IDisposable
{
    public const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8;

    private sealed record Group(List<Parameter> Members, double BaseRate, double Decay)
    {
        public double Rate { get; set; } = BaseRate;
    }

    private readonly Scalar beta1 = Beta1.ToScalar(), oneMinusBeta1 = (1 - Beta1).ToScalar();
    private readonly Scalar beta2 = Beta2.ToScalar(), oneMinusBeta2 = (1 - Beta2).ToScalar();
    private readonly Scalar epsilon = Epsilon.ToScalar();
    private readonly List<Group> groups = [];
    private readonly HashSet<string> held = [];
    private readonly List<Parameter> parameters = [];
    private readonly List<string> names = [];
    private readonly Dictionary<Parameter, AdamState> states = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// The total norm of the gradients: NaN or infinity when any gradient is not finite. Read before clipping, which
    /// would spread a NaN to every gradient and hide where it came from.
    /// </summary>
    public double GradientNorm()
    {
        using var scope = NewDisposeScope(); // also the .grad wrappers
        var norms = parameters.Select(p => p.grad).OfType<Tensor>().Select(g => g.norm()).ToList();
        return norms.Count == 0 ? 0 : stack(norms).norm().item<float>();
    }

    /// <summary>
    /// Scales the gradients down to a total norm of at most <paramref name="maxNorm"/>, given their total norm from
    /// <see cref="GradientNorm"/>: <c>torch.nn.utils.clip_grad_norm_</c>'s rule (factor maxNorm / (norm + 1e-6), at
    /// most 1) without computing the norms a second time.
    /// </summary>
    public void ClipGradients(double maxNorm, double norm)
    {
        double factor = maxNorm / (norm + 1e-6);
        if (factor >= 1) return;
        using var scope = NewDisposeScope();
        using Scalar scale = ((float)factor).ToScalar(); // torch computes the factor as a float32 tensor
        foreach (var p in parameters)
            if (p.grad is { } grad) grad.mul_(scale);
    }

    /// <summary>The name of the first parameter whose gradient holds a NaN or infinity, or null.</summary>
    public string? FirstNonFiniteGradient()
    {
        using var scope = NewDisposeScope();
        for (int i = 0; i < parameters.Count; i++)
            if (parameters[i].grad is { } grad && !grad.isfinite().all().item<bool>()) return names[i];
        return null;
    }

    /// <summary>Adds the plan's trainable tensors that the optimizer does not hold yet, with zero moments.</summary>
    public void AddTrainable(TrainingPlan plan, LearningRates rates, int layers)
    {
        var fresh = plan.Trainable.Where(e => held.Add(e.Key)).ToList();
        foreach (var bucket in fresh.GroupBy(e => (Rate: rates.For(e, layers), Decay: e.DecaysWeight)))
        {
            var members = bucket.Select(e => e.Parameter).ToList();
            parameters.AddRange(members);
            names.AddRange(bucket.Select(e => e.Key));
            groups.Add(new Group(members, bucket.Key.Rate, bucket.Key.Decay ? weightDecay : 0));
            foreach (var p in members)
                states[p] = new AdamState(zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope());
        }
    }

    /// <summary>Sets every group's rate to its base rate × <paramref name="factor"/>; returns the largest rate.</summary>
    public double SetSchedule(double factor)
    {
        double largest = 0;
        foreach (var group in groups)
        {
            group.Rate = group.BaseRate * factor;
            largest = Math.Max(largest, group.Rate);
        }
        return largest;
    }

    /// <summary>One AdamW step of every tensor that has a gradient.</summary>
    public void Step()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var group in groups)
            foreach (var p in group.Members)
            {
                if (p.grad is not { } grad) continue;
                AdamState state = states[p];
                state.Step++;
                double correction1 = 1 - Math.Pow(Beta1, state.Step), correction2Root = Math.Sqrt(1 - Math.Pow(Beta2, state.Step));
                if (group.Decay != 0)
                {
                    using var keep = (1 - group.Rate * group.Decay).ToScalar();
                    p.mul_(keep);
                }
                state.ExpAvg.mul_(beta1).add_(grad, oneMinusBeta1);
                state.ExpAvgSq.mul_(beta2).addcmul_(grad, grad, oneMinusBeta2);
                using var root = correction2Root.ToScalar();
                using var stepSize = (-group.Rate / correction1).ToScalar();
                Tensor denominator = state.ExpAvgSq.sqrt().div_(root).add_(epsilon, Scalars.One);
                p.addcdiv_(state.ExpAvg, denominator, stepSize);
            }
    }

    /// <summary>The AdamW state of each parameter, by key.</summary>
    public IReadOnlyDictionary<string, AdamState> States() =>
        names.Select((name, i) => (name, states[parameters[i]])).ToDictionary(x => x.name, x => x.Item2, StringComparer.Ordinal);

    /// <summary>Sets every gradient to zero (the tensors stay allocated, as PyTorch does with <c>set_to_none=False</c>).</summary>
    public void ZeroGrad()
    {
        // Reading .grad makes a new wrapper each time; the scope disposes the wrappers here, the gradients stay.
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var p in parameters)
            if (p.grad is { } grad) grad.zero_();
    }

    public void Dispose()
    {
        foreach (var state in states.Values) state.Dispose();
        beta1.Dispose();
        oneMinusBeta1.Dispose();
        beta2.Dispose();
        oneMinusBeta2.Dispose();
        epsilon.Dispose();
    }
}
