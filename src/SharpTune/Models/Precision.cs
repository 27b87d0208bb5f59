using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>The number format the encoder's matrix multiplications run in.</summary>
public enum Precision
{
    /// <summary>Everything in float32.</summary>
    Fp32,
    /// <summary>
    /// Mixed precision: Linear layers and attention run in bfloat16, while weights (and so the optimizer's master
    /// copies), embeddings, residual sums, LayerNorm, the pooled output, heads and losses stay float32.
    /// </summary>
    Bf16,
}

/// <summary>Parses the CLI spelling of <see cref="Precision"/>.</summary>
public static class Precisions
{
    /// <summary>fp32 or bf16 (case-insensitive); anything else is an error naming the option.</summary>
    public static Precision Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" => Precision.Fp32,
        "bf16" or "bfloat16" => Precision.Bf16,
        _ => throw new SharpTuneException($"--precision must be fp32 or bf16, got '{text}'."),
    };
}

/// <summary>
/// Mixed precision for the encoder, like <c>torch.autocast</c> (which TorchSharp 0.107 does not expose): inside
/// <see cref="Enter"/>, <see cref="Linear"/> casts its input, weight and bias to the compute type. Gradients flow
/// back through the casts to the float32 parameters, so the optimizer, checkpoints and the freeze audit never see
/// bfloat16. The setting is per thread, as PyTorch's is.
/// </summary>
public static class Autocast
{
    [ThreadStatic] private static ScalarType? computeType;

    /// <summary>The type Linear layers compute in on this thread, or null outside a mixed-precision scope.</summary>
    public static ScalarType? ComputeType => computeType;

    /// <summary>Runs the encoder's Linear layers in <paramref name="precision"/> until the returned scope is disposed.</summary>
    public static IDisposable Enter(Precision precision) => new Scope(precision switch
    {
        Precision.Fp32 => null,
        Precision.Bf16 => ScalarType.BFloat16,
        _ => throw new ArgumentOutOfRangeException(nameof(precision)),
    });

    /// <summary>
    /// Applies <paramref name="layer"/> to <paramref name="x"/>: a plain Linear computes in the scope's type (its
    /// output keeps that type, as under torch.autocast); any other layer (e.g. a LoRA wrapper) runs in float32.
    /// </summary>
    public static Tensor Linear(nn.Module<Tensor, Tensor> layer, Tensor x)
    {
        if (computeType is not { } type) return layer.call(x);
        // A wrapper (a LoRA adapter, a custom layer) runs as it is; its output joins the others in the compute type,
        // so that query, key and value always agree (SDPA requires one dtype).
        if (layer is not TorchSharp.Modules.Linear linear) return layer.call(x).to_type(type);
        Tensor weight = linear.weight!.to_type(type);
        Tensor? bias = linear.bias?.to_type(type);
        return nn.functional.linear(x.to_type(type), weight, bias);
    }

    private sealed class Scope : IDisposable
    {
        private readonly ScalarType? previous;

        public Scope(ScalarType? type)
        {
            previous = computeType;
            computeType = type;
        }

        public void Dispose() => computeType = previous;
    }
}
