using System.Runtime.InteropServices;
using SharpTune.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Dropout as <c>nn.Dropout</c> computes it (zero each element with probability p, scale the rest by 1/(1−p)); on
/// bfloat16 tensors (bf16 mixed precision) the keep-mask is drawn by SharpTune instead of libtorch. libtorch's CPU
/// generator draws one number per element under a lock, and attention with dropout takes its math path: that was 44 %
/// of a bf16 MiniLM training step (bench/RESULTS.md, step profile). With SharpTune's masks a bf16 forward + backward
/// took 0.915 s instead of 1.202 s (bench <c>--dropout-cost</c>, quiet machine, 7 rounds); in float32 it was not faster
/// (3.67 s against 3.37 s), so float32 keeps libtorch's dropout and attention unchanged. Here one number from torch's generator
/// seeds a counter-based SplitMix64 stream that gives four 16-bit uniforms per draw, written straight into the mask
/// tensor: p is applied at a resolution of 1/65,536 (0.1 becomes 0.100006), and the masks follow
/// <c>torch.manual_seed</c> and a resumed run's saved generator state exactly as libtorch's would.
/// </summary>
public sealed class FastDropout(double probability) : nn.Module<Tensor, Tensor>("Dropout")
{
    /// <summary>libtorch's dropout and attention instead (the benchmark's side-by-side rows; not for use elsewhere).</summary>
    internal static bool UseLibTorch { get; set; }

    /// <summary>The probability of zeroing an element.</summary>
    public double Probability { get; } = probability >= 0 && probability <= 1 ? probability
        : throw new SharpTuneException($"dropout must be in [0, 1], got {probability}.");

    /// <inheritdoc />
    public override Tensor forward(Tensor x) => Apply(x, Probability, training);

    /// <summary><paramref name="x"/> with dropout <paramref name="probability"/> when <paramref name="training"/>, else <paramref name="x"/> itself.</summary>
    public static Tensor Apply(Tensor x, double probability, bool training)
    {
        if (!training || probability == 0) return x;
        if (UseLibTorch || x.dtype != ScalarType.BFloat16) return nn.functional.dropout(x, probability, true);
        if (probability >= 1) return x.mul(Scalars.Zero);
        using Tensor keep = KeepMask(x.shape, probability, x.device);
        using Scalar scale = (1.0 / (1.0 - probability)).ToScalar();
        return x.mul(keep).mul_(scale);
    }

    /// <summary>A bool tensor of <paramref name="shape"/>: true with probability 1 − <paramref name="probability"/> (to 1/65,536).</summary>
    internal static Tensor KeepMask(long[] shape, double probability, Device device)
    {
        ulong seed;
        using (Tensor draw = torch.randint(long.MaxValue, [1], ScalarType.Int64)) seed = (ulong)draw.item<long>();
        using Tensor uniform = torch.empty(shape, ScalarType.Int16);
        Fill(MemoryMarshal.Cast<byte, ulong>(uniform.bytes), MemoryMarshal.Cast<byte, ushort>(uniform.bytes), seed);
        // As signed 16-bit values the uniforms cover −32,768 … 32,767; keeping those ≥ t − 32,768 keeps (65,536 − t) of 65,536.
        using Scalar threshold = ((long)Math.Round(probability * 65536) - 32768).ToScalar();
        Tensor keep = uniform.ge(threshold);
        return device.type == DeviceType.CPU ? keep : keep.to(device);
    }

    // Counter-based: word i is SplitMix64's output for seed + i·γ, so the stream is fixed by the seed alone.
    private static void Fill(Span<ulong> words, Span<ushort> all, ulong seed)
    {
        const ulong Gamma = 0x9E3779B97F4A7C15;
        ulong counter = seed;
        for (int i = 0; i < words.Length; i++) words[i] = Mix(counter += Gamma);
        ulong tail = Mix(counter + Gamma);
        for (int i = words.Length * 4; i < all.Length; i++, tail >>= 16) all[i] = (ushort)tail;
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}

/// <summary>Scaled dot-product attention, with its dropout on the attention probabilities drawn by <see cref="FastDropout"/>.</summary>
public static class Attention
{
    private static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar();

    /// <summary>
    /// softmax(q·kᵀ/√d, keys where <paramref name="keyMask"/> is false excluded) · v. Without dropout (evaluation, or p = 0)
    /// and for float32 inputs this is libtorch's own; with dropout on bf16 inputs, libtorch would take its math path
    /// (float32 scores and softmax, one generator draw per probability) — the same math here, with the fast dropout mask.
    /// </summary>
    public static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, Tensor? keyMask, double dropout, bool training)
    {
        if (!training || dropout == 0) return nn.functional.scaled_dot_product_attention(q, k, v, keyMask, 0.0);
        if (FastDropout.UseLibTorch || q.dtype != ScalarType.BFloat16) return nn.functional.scaled_dot_product_attention(q, k, v, keyMask, dropout);
        using var scope = NewDisposeScope();
        using Scalar scale = (1.0 / Math.Sqrt(q.shape[^1])).ToScalar();
        Tensor scores = torch.matmul(q.to_type(ScalarType.Float32), k.to_type(ScalarType.Float32).transpose(-2, -1)).mul_(scale);
        if (keyMask is not null) scores = scores.masked_fill(keyMask.logical_not(), NegativeInfinity);
        Tensor probabilities = FastDropout.Apply(torch.softmax(scores, -1), dropout, training: true);
        return torch.matmul(probabilities, v.to_type(ScalarType.Float32)).to_type(q.dtype).MoveToOuterDisposeScope();
    }
}
