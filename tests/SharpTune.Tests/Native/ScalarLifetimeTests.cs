using System.Reflection;
using TorchSharp;

namespace SharpTune.Tests.Native;

/// <summary>
/// SharpTune never lets TorchSharp make a temporary native scalar (see <c>SharpTune.Native.Scalars</c>): a number
/// converted implicitly, or a TorchSharp method that converts one inside (<c>a + b</c>, <c>t * 0.5</c>,
/// <c>torch.arange(n)</c>, <c>linalg.vector_norm</c>, <c>AdamW.step</c>), can be freed by the finalizer while libtorch
/// reads it. Read from the IL: every call SharpTune makes, and TorchSharp's own calls followed to any depth.
/// </summary>
public sealed class ScalarLifetimeTests
{
    private static bool MakesScalar(MethodBase method) =>
        method.DeclaringType == typeof(Scalar) && method.Name == "op_Implicit";

    /// <summary>TorchSharp's methods that make a temporary scalar, directly or through any of their static callees.</summary>
    private static HashSet<MethodBase> TorchSharpMakers()
    {
        var calls = IlCalls.Of(typeof(Scalar).Assembly).ToList();
        // Inside TorchSharp an explicit ToScalar() counts too: whether it is disposed in time is not visible here.
        var makers = calls.Where(c => MakesScalar(c.Callee) || c.Callee.DeclaringType == typeof(ScalarExtensionMethods))
            .Select(c => c.Caller).ToHashSet();
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var (caller, callee) in calls)
                if (makers.Contains(callee) && makers.Add(caller)) grew = true;
        }
        // Virtual calls are not followed by the scan; the optimizers' steps are (lambdas passed to _step).
        return makers;
    }

    [Fact]
    public void The_scan_finds_the_known_makers()
    {
        // The scan itself must work: these TorchSharp members make a temporary scalar inside (read in TorchSharp 0.107's source).
        var makers = TorchSharpMakers().Select(m => $"{m.DeclaringType!.Name}.{m.Name}").ToHashSet();
        Assert.Contains("Tensor.op_Addition", makers);
        Assert.Contains("Tensor.add_", makers);
        Assert.Contains("torch.arange", makers);
        Assert.Contains("linalg.vector_norm", makers);
        Assert.Contains(makers, m => m.StartsWith("AdamW.<step>", StringComparison.Ordinal));
        var sample = IlCalls.Of(typeof(ScalarLifetimeTests).Assembly)
            .Where(c => c.Caller.Name == nameof(Sample) && MakesScalar(c.Callee)).ToList();
        Assert.Single(sample);
    }

    private static torch.Tensor Sample(torch.Tensor t) => t.mul(2.5);

    [Fact]
    public void SharpTune_makes_no_temporary_native_scalar()
    {
        var makers = TorchSharpMakers();
        var offenders = IlCalls.Of(typeof(SharpTune.TaskModel).Assembly).Concat(IlCalls.Of(typeof(SharpTune.Cli.CliApp).Assembly))
            .Where(c => MakesScalar(c.Callee) || makers.Contains(c.Callee))
            .Select(c => $"{c.Caller.DeclaringType?.FullName}.{c.Caller.Name} calls {c.Callee.DeclaringType?.Name}.{c.Callee}")
            .Distinct().Order().ToList();
        Assert.True(offenders.Count == 0, "Temporary native scalars (use SharpTune.Native.Scalars or a ToScalar() in a using):\n" + string.Join("\n", offenders));
    }
}
