#pragma warning disable IDE1006 // field names are checkpoint key segments (PEFT's names)
using SharpTune.Models;
using SharpTune.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Lora;

/// <summary>LoRA settings: rank, scaling numerator, dropout on the adapter input, and which Linear layers to wrap.</summary>
/// <param name="Rank">r: the adapter's inner width.</param>
/// <param name="Alpha">The update is scaled by alpha / r.</param>
/// <param name="Dropout">Dropout on the adapter's input.</param>
/// <param name="TargetModules">Key suffixes of the Linear layers to wrap; empty or null: the architecture's defaults (PEFT's table: query and value for BERT).</param>
public sealed record LoraOptions(int Rank = 8, double Alpha = 16, double Dropout = 0.1, IReadOnlyList<string>? TargetModules = null)
{
    /// <summary>Throws a <see cref="SharpTuneException"/> naming the bad option.</summary>
    public LoraOptions Validate()
    {
        if (Rank <= 0) throw new SharpTuneException($"lora: r must be positive, got {Rank}.");
        if (Alpha <= 0) throw new SharpTuneException($"lora: alpha must be positive, got {Alpha}.");
        if (Dropout < 0 || Dropout >= 1) throw new SharpTuneException($"lora: dropout must be in [0, 1), got {Dropout}.");
        return this;
    }
}

/// <summary>
/// A Linear layer with a low-rank adapter, as PEFT's LoraLinear: y = base_layer(x) + (alpha/r) · lora_B(lora_A(dropout(x))).
/// lora_A starts random and lora_B at zero, so the wrapped model starts out exactly equal to the base model.
/// </summary>
public sealed class LoraLinear : Module<Tensor, Tensor>
{
    private readonly Linear base_layer;
    private readonly Linear lora_A;
    private readonly Linear lora_B;
    private readonly FastDropout lora_dropout;

    /// <summary>alpha / r.</summary>
    public double Scaling { get; }

    private readonly Scalar scaling;

    /// <summary>The options it was made with (targets resolved: the ones the injector matched against).</summary>
    public LoraOptions Options { get; }

    /// <summary>Wraps <paramref name="baseLayer"/> (its parameters are kept, not copied).</summary>
    public LoraLinear(Linear baseLayer, LoraOptions options) : base("LoraLinear")
    {
        options.Validate();
        long outFeatures = baseLayer.weight!.shape[0], inFeatures = baseLayer.weight.shape[1];
        base_layer = baseLayer;
        // On the base layer's device and dtype: adapters are added after the model may have moved to a GPU.
        var device = baseLayer.weight.device;
        lora_A = Linear(inFeatures, options.Rank, hasBias: false, device: device, dtype: baseLayer.weight.dtype);
        lora_B = Linear(options.Rank, outFeatures, hasBias: false, device: device, dtype: baseLayer.weight.dtype);
        using (torch.no_grad()) lora_B.weight!.zero_();
        lora_dropout = new FastDropout(options.Dropout);
        Scaling = options.Alpha / options.Rank;
        scaling = Scaling.ToScalar();
        Options = options;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        // Through Autocast, so that under bf16 mixed precision the adapter computes in bf16 like every other Linear.
        Tensor result = Autocast.Linear(base_layer, x);
        Tensor update = Autocast.Linear(lora_B, Autocast.Linear(lora_A, lora_dropout.call(x)));
        return Scalars.Add(result, update.mul(scaling));
    }

    /// <summary>The wrapped Linear layer (its bias is the layer's bias).</summary>
    public Linear BaseLayer => base_layer;

    /// <summary>What <see cref="Merge"/> would make the base weight, W + alpha/r · B·A, as a new tensor; the layer is unchanged.</summary>
    public Tensor MergedWeight()
    {
        using var noGrad = torch.no_grad();
        using var delta = torch.matmul(lora_B.weight!, lora_A.weight!);
        return base_layer.weight!.detach().add(delta.to_type(base_layer.weight.dtype), scaling);
    }

    /// <summary>Folds the adapter into the base weight (W += alpha/r · B·A) and returns the plain Linear.</summary>
    public Linear Merge()
    {
        using var noGrad = torch.no_grad();
        using var merged = MergedWeight();
        base_layer.weight!.copy_(merged);
        return base_layer;
    }
}

/// <summary>Puts LoRA adapters into an encoder and merges them back.</summary>
public static class LoraInjector
{
    /// <summary>
    /// Wraps every Linear layer whose key ends with one of the targets (the architecture's defaults when
    /// <see cref="LoraOptions.TargetModules"/> is empty); returns the wrapped keys. Throws when no layer matches
    /// (a target name that does not exist is a mistake, not a no-op).
    /// </summary>
    public static IReadOnlyList<string> Inject(Encoder encoder, LoraOptions options)
    {
        options.Validate();
        Architecture architecture = encoder.Architecture;
        IReadOnlyList<string> targets = options.TargetModules is { Count: > 0 } chosen ? chosen : architecture.LoraTargets;
        var modules = LinearSlots.ModulesByName(encoder);
        var wrapped = new List<string>();
        foreach (var (key, module) in modules)
        {
            bool targeted = targets.Any(t => key == t || key.EndsWith("." + t, StringComparison.Ordinal));
            if (!targeted || module is not Linear linear) continue;
            LinearSlots.Replace(modules, key, new LoraLinear(linear, options with { TargetModules = targets }));
            wrapped.Add(key);
        }
        if (wrapped.Count == 0)
            throw new SharpTuneException($"lora: no Linear layer matches target_modules [{string.Join(", ", targets)}]; {architecture.ModelType}'s are {string.Join(", ", architecture.LinearLayers)}.");
        return wrapped;
    }

    /// <summary>Merges every adapter into its base weight and puts the plain Linear back; returns the merged keys.</summary>
    public static IReadOnlyList<string> Merge(nn.Module model)
    {
        var modules = LinearSlots.ModulesByName(model);
        var merged = new List<string>();
        foreach (var (key, module) in modules)
        {
            if (module is not LoraLinear lora) continue;
            LinearSlots.Replace(modules, key, lora.Merge());
            merged.Add(key);
        }
        return merged;
    }

    /// <summary>
    /// The model's tensors as a model without adapters has them (every adapter folded into its base weight under the
    /// plain Linear's keys: <c>….query.weight</c> = W + alpha/r · B·A); the model keeps its adapters. The tensors are new
    /// (merged weights) or detached aliases: dispose them.
    /// </summary>
    public static Dictionary<string, Tensor> MergedStateDict(nn.Module model)
    {
        var layers = model.named_modules().Where(m => m.module is LoraLinear).ToDictionary(m => m.name + ".", m => (LoraLinear)m.module, StringComparer.Ordinal);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, tensor) in model.state_dict())
        {
            var (prefix, layer) = layers.FirstOrDefault(l => key.StartsWith(l.Key, StringComparison.Ordinal));
            if (layer is null) result.Add(key, tensor.detach());
            else if (key == prefix + "base_layer.weight") result.Add(prefix + "weight", layer.MergedWeight());
            else if (key.StartsWith(prefix + "base_layer.", StringComparison.Ordinal)) result.Add(prefix + key[(prefix.Length + "base_layer.".Length)..], tensor.detach());
            // lora_A and lora_B are folded into the weight.
        }
        return result;
    }

    /// <summary>
    /// Every tensor of the wrapped layers, unmerged and by model key (<c>….query.base_layer.weight</c>,
    /// <c>….query.lora_A.weight</c> …) as detached CPU copies: what a checkpoint needs to continue training exactly.
    /// Empty when the model has no adapters.
    /// </summary>
    public static Dictionary<string, Tensor> AdapterState(nn.Module model)
    {
        var prefixes = model.named_modules().Where(m => m.module is LoraLinear).Select(m => m.name + ".").ToList();
        return model.state_dict().Where(p => prefixes.Any(prefix => p.Key.StartsWith(prefix, StringComparison.Ordinal)))
            .ToDictionary(p => p.Key, p => p.Value.detach().cpu().clone(), StringComparer.Ordinal);
    }

    /// <summary>True when the model holds at least one adapter.</summary>
    public static bool HasAdapters(nn.Module model) => model.modules().Any(m => m is LoraLinear);
}
