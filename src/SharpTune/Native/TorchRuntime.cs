using TorchSharp;

namespace SharpTune.Native;

/// <summary>Loads libtorch once and turns a load failure into an error that says what to do.</summary>
public static class TorchRuntime
{
    private static readonly Lazy<string> Loaded = new(Load);

    /// <summary>Ensures libtorch is loaded; returns the libtorch version string.</summary>
    public static string EnsureLoaded() => Loaded.Value;

    private static string Load()
    {
        try
        {
            using var probe = torch.zeros(1);
            return "libtorch (TorchSharp " + typeof(torch).Assembly.GetName().Version + ")";
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or NotSupportedException)
        {
            Exception inner = e;
            while (inner.InnerException is not null) inner = inner.InnerException;
            throw new InvalidOperationException(
                "libtorch could not be loaded: " + inner.Message + Environment.NewLine +
                "SharpTune's build marks libLibTorchSharp.so's GLIBCXX_3.4.32 requirement weak " +
                "(Directory.Build.targets); if you copied the binaries by hand, rebuild or publish them instead.", e);
        }
    }
}
