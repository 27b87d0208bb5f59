using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using SharpTune.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Dropout as <c>nn.Dropout</c> computes it (zero each element with probability p, scale the rest by 1/(1−p)), with the
/// mask drawn by SharpTune for float32 and bfloat16 tensors. libtorch's CPU dropout draws one number per element from
/// its generator and, for attention, leaves the fused kernel for its math path: in the step profile of a MiniLM
/// training step that was the largest cost after the matrix multiplications (bench/RESULTS.md). Here one number from
/// torch's generator seeds a counter-based hash that gives two 16-bit uniforms per 32-bit word, computed eight words at
/// a time (Vector256) and written straight into a mask of the input's type holding 0 or 1/(1−p), so one multiply
/// applies it forward and backward: p is applied at a resolution of 1/65,536 (0.1 becomes 0.100006), and the masks
/// follow <c>torch.manual_seed</c> and a resumed run's saved generator state as libtorch's would. Other types (float16,
/// float64) use libtorch's dropout.
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
        if (UseLibTorch || !HasMask(x.dtype)) return nn.functional.dropout(x, probability, true);
        if (probability >= 1) return x.mul(Scalars.Zero);
        using Tensor keep = ScaledKeepMask(x.shape, probability, x.dtype, x.device);
        return x.mul(keep);
    }

    /// <summary>Whether <see cref="ScaledKeepMask"/> makes masks of <paramref name="type"/>.</summary>
    internal static bool HasMask(ScalarType type) => type is ScalarType.Float32 or ScalarType.BFloat16;

    /// <summary>
    /// A tensor of <paramref name="shape"/> and <paramref name="type"/> (float32 or bfloat16): 0 with probability
    /// <paramref name="probability"/> (to 1/65,536), else 1 / (1 − p) rounded to <paramref name="type"/> — the noise
    /// libtorch's dropout multiplies by (<c>bernoulli_(1 − p).div_(1 − p)</c> in the input's type). A mask in the
    /// input's own type matters: multiplying by a bool mask was 2× slower forward + backward (libtorch casts each element).
    /// </summary>
    internal static Tensor ScaledKeepMask(long[] shape, double probability, ScalarType type, Device device)
    {
        ulong seed;
        using (Tensor draw = torch.randint(long.MaxValue, [1], ScalarType.Int64)) seed = (ulong)draw.item<long>();
        var threshold = (uint)Math.Round(probability * 65536);
        float scale = (float)(1.0 / (1.0 - probability));
        Tensor mask = torch.empty(shape, type);
        if (type == ScalarType.Float32) Fill<float>(mask, seed, threshold, BitConverter.SingleToUInt32Bits(scale));
        else if (type == ScalarType.BFloat16) Fill<ushort>(mask, seed, threshold, BFloat16Bits(scale));
        else { mask.Dispose(); throw new ArgumentException($"no dropout mask for {type}", nameof(type)); }
        if (device.type == DeviceType.CPU) return mask;
        using (mask) return mask.to(device);
    }

    // bfloat16 is float32's upper half, rounded to nearest even.
    private static uint BFloat16Bits(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16;
    }

    // Counter-based, so the mask is fixed by the seed alone and blocks are written in parallel: the 32-bit hash of pair
    // j, Hash(Hash(j + seed's low half) ^ seed's high half), gives element 2j its low 16 bits and element 2j + 1 its
    // high 16 bits as uniforms u; an element is kept when u ≥ threshold, i.e. with probability (65,536 − threshold) / 65,536.
    // The same arithmetic runs eight pairs at a time in Vector256 lanes.
    private static void Fill<T>(Tensor mask, ulong seed, uint threshold, uint scaleBits) where T : unmanaged
    {
        const int Block = 1 << 16; // elements per parallel block; a multiple of 16
        int length = checked((int)mask.numel());
        int blocks = (length + Block - 1) / Block;
        Parallel.For(0, blocks, new ParallelOptions { MaxDegreeOfParallelism = TorchRuntime.Threads }, block =>
        {
            int first = block * Block;
            Span<T> part = MemoryMarshal.Cast<byte, T>(mask.bytes).Slice(first, Math.Min(Block, length - first));
            FillBlock(part, first / 2, (uint)seed, (uint)(seed >> 32), threshold, scaleBits);
        });
    }

    private static void FillBlock<T>(Span<T> mask, int firstPair, uint low, uint high, uint threshold, uint scaleBits) where T : unmanaged
    {
        int i = 0;
        var lanes = Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7);
        Vector256<uint> limit = Vector256.Create(threshold), scale = Vector256.Create(scaleBits);
        for (; i + 16 <= mask.Length; i += 16)
        {
            Vector256<uint> pair = Vector256.Create((uint)(firstPair + i / 2)) + lanes;
            Vector256<ushort> uniforms = Hash(Hash(pair + Vector256.Create(low)) ^ Vector256.Create(high)).AsUInt16();
            (Vector256<uint> first, Vector256<uint> second) = Vector256.Widen(uniforms);
            Vector256<uint> a = Vector256.GreaterThanOrEqual(first, limit) & scale, b = Vector256.GreaterThanOrEqual(second, limit) & scale;
            if (typeof(T) == typeof(float))
            {
                Span<uint> output = MemoryMarshal.Cast<T, uint>(mask.Slice(i, 16));
                a.CopyTo(output);
                b.CopyTo(output[8..]);
            }
            else Vector256.Narrow(a, b).CopyTo(MemoryMarshal.Cast<T, ushort>(mask.Slice(i, 16)));
        }
        for (; i < mask.Length; i++)
        {
            uint hash = Hash(Hash((uint)(firstPair + i / 2) + low) ^ high);
            uint value = ((i & 1) == 0 ? hash & 0xFFFF : hash >> 16) >= threshold ? scaleBits : 0;
            if (typeof(T) == typeof(float)) MemoryMarshal.Cast<T, uint>(mask)[i] = value;
            else MemoryMarshal.Cast<T, ushort>(mask)[i] = (ushort)value;
        }
    }

    // A 32-bit integer hash with good avalanche (Wellons' "lowbias32").
    private static uint Hash(uint x)
    {
        x ^= x >> 16;
        x *= 0x7FEB352D;
        x ^= x >> 15;
        x *= 0x846CA68B;
        return x ^ (x >> 16);
    }

    private static Vector256<uint> Hash(Vector256<uint> x)
    {
        x ^= Vector256.ShiftRightLogical(x, 16);
        x *= Vector256.Create(0x7FEB352Du);
        x ^= Vector256.ShiftRightLogical(x, 15);
        x *= Vector256.Create(0x846CA68Bu);
        return x ^ Vector256.ShiftRightLogical(x, 16);
    }
}

/// <summary>Scaled dot-product attention, with its dropout on the attention probabilities drawn by <see cref="FastDropout"/>.</summary>
public static class Attention
{
    private static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar();

    /// <summary>
    /// softmax(q·kᵀ/√d, keys where <paramref name="keyMask"/> is false excluded) · v. Without dropout (evaluation, or
    /// p = 0) this is libtorch's own; with dropout, libtorch would take its math path (for bf16: float32 scores and
    /// softmax) with one generator draw per probability — the same math here, with <see cref="FastDropout"/>'s mask.
    /// </summary>
    public static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, Tensor? keyMask, double dropout, bool training)
    {
        if (!training || dropout == 0) return nn.functional.scaled_dot_product_attention(q, k, v, keyMask, 0.0);
        if (FastDropout.UseLibTorch || !FastDropout.HasMask(q.dtype)) return nn.functional.scaled_dot_product_attention(q, k, v, keyMask, dropout);
        using var scope = NewDisposeScope();
        // libtorch's math path (for bf16 on the CPU: float32 scores and softmax). The scale goes on q (a quarter of the
        // scores' size), the key mask is added as 0 / −∞ in place, and dropout multiplies by a float32 mask.
        using Scalar scale = (1.0 / Math.Sqrt(q.shape[^1])).ToScalar();
        Tensor scores = torch.matmul(q.to_type(ScalarType.Float32).mul(scale), k.to_type(ScalarType.Float32).transpose(-2, -1));
        if (keyMask is not null) scores.add_(torch.zeros(keyMask.shape, ScalarType.Float32, keyMask.device).masked_fill_(keyMask.logical_not(), NegativeInfinity), Scalars.One);
        Tensor probabilities = torch.softmax(scores, -1);
        Tensor keep = FastDropout.ScaledKeepMask(probabilities.shape, dropout, ScalarType.Float32, probabilities.device);
        return torch.matmul(probabilities.mul(keep), v.to_type(ScalarType.Float32)).to_type(q.dtype).MoveToOuterDisposeScope();
    }
}
