using System.Globalization;
using TorchSharp;

namespace SharpTune.Native;

/// <summary>
/// Loads libtorch once, turns a load failure into an error that says what to do, and sets libtorch's
/// intra-op thread count once, process-wide: the number of logical CPUs (<see cref="Environment.ProcessorCount"/>),
/// or <c>$SHARPTUNE_THREADS</c>, or what <see cref="Configure"/> was given. The trainer, evaluator, feature cache
/// and encoder loader call <see cref="EnsureLoaded"/>, so any use of the library starts with it.
/// </summary>
public static class TorchRuntime
{
    /// <summary>The environment variable that overrides the thread count.</summary>
    public const string ThreadsVariable = "SHARPTUNE_THREADS";

    private static readonly Lazy<string> Loaded = new(Load);
    private static int configured; // 0: not configured, $SHARPTUNE_THREADS or the CPU count

    /// <summary>The intra-op thread count SharpTune gives libtorch.</summary>
    public static int Threads => configured > 0 ? configured
        : ResolveThreads(Environment.GetEnvironmentVariable(ThreadsVariable), Environment.ProcessorCount);

    /// <summary>Ensures libtorch is loaded and uses <see cref="Threads"/> threads; returns the libtorch version string.</summary>
    /// <exception cref="SharpTuneException"><c>$SHARPTUNE_THREADS</c> is not a positive integer.</exception>
    public static string EnsureLoaded() => Loaded.Value;

    /// <summary>Sets libtorch's intra-op thread count now, overriding <c>$SHARPTUNE_THREADS</c>.</summary>
    /// <exception cref="SharpTuneException"><paramref name="threads"/> is not positive.</exception>
    public static void Configure(int threads)
    {
        if (threads <= 0) throw new SharpTuneException($"--threads must be positive, got {threads}.");
        EnsureLoaded();
        configured = threads;
        torch.set_num_threads(threads);
    }

    /// <summary>The thread count for a <c>$SHARPTUNE_THREADS</c> value (null or empty: <paramref name="processorCount"/>).</summary>
    internal static int ResolveThreads(string? variable, int processorCount)
    {
        if (string.IsNullOrWhiteSpace(variable)) return processorCount;
        return int.TryParse(variable.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int threads) && threads > 0 ? threads
            : throw new SharpTuneException($"{ThreadsVariable}='{variable}' must be a positive integer (the number of CPU threads libtorch may use).");
    }

    private static string Load()
    {
        try
        {
            using var probe = torch.zeros(1);
            // libtorch's default is the physical cores as MKL counts them, which can leave logical CPUs idle.
            torch.set_num_threads(Threads);
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
