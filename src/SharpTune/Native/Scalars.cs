using TorchSharp;

namespace SharpTune.Native;

/// <summary>
/// The native scalars SharpTune passes to libtorch. TorchSharp turns a number into a native <see cref="Scalar"/>
/// implicitly (<c>t * 0.5</c>, <c>a + b</c> with its hidden alpha of 1, <c>torch.arange(n)</c>) and leaves it to the
/// finalizer; the managed object is unreachable once its handle is read, so a collection started by another thread can
/// free it while libtorch is still reading it ("Expected false to be true … toFloat at c10/core/Scalar.h:140", a native
/// crash seen about once per 100,000 frozen-head steps). SharpTune therefore passes only these process-lifetime
/// scalars, or ones it creates with <see cref="ScalarExtensionMethods"/>' <c>ToScalar</c> in a <c>using</c> that
/// keeps them alive until the call returned. <c>ScalarLifetimeTests</c> reads SharpTune's IL and fails on any other.
/// </summary>
internal static class Scalars
{
    /// <summary>1, the alpha of a plain tensor addition or subtraction (<c>a.add(b, One)</c> for <c>a + b</c>).</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary>0.</summary>
    public static readonly Scalar Zero = 0.ToScalar();

    /// <summary><c>a + b</c> without a temporary scalar.</summary>
    public static torch.Tensor Add(torch.Tensor a, torch.Tensor b) => a.add(b, One);

    /// <summary><c>torch.arange(count)</c> as int64 on <paramref name="device"/>, without a temporary scalar.</summary>
    public static torch.Tensor Arange(long count, torch.Device device)
    {
        using var end = count.ToScalar();
        return torch.arange(Zero, end, One, torch.ScalarType.Int64, device);
    }
}
