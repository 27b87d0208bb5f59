using System.Globalization;
using System.Runtime.InteropServices;
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

    /// <summary>Set to 0 to leave glibc's malloc settings as they are (see <see cref="KeepFreedMemory"/>).</summary>
    public const string KeepFreedMemoryVariable = "SHARPTUNE_KEEP_FREED_MEMORY";

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

    /// <summary>Whether <see cref="KeepFreedMemory"/> changed glibc's malloc settings in this process.</summary>
    public static bool KeepsFreedMemory { get; private set; }

    // libtorch's CPU tensors come from malloc. With glibc's defaults, memory freed at the end of a training step above
    // the (dynamic) trim threshold goes back to the kernel and the next step faults every page in again, zero-filled:
    // 30,000–65,000 minor page faults per bf16 MiniLM step (batch 32 × 128). With the trim threshold at 2 GB and the
    // mmap threshold at its maximum (32 MB), freed memory is reused: about 100 faults per step on the main thread (the
    // CLI's). Other threads' arenas are 64 MB heaps that glibc deletes once entirely free whatever the threshold: about
    // half the pages come back there. The process keeps its peak heap (as PyTorch's caching allocators do); tensors
    // over 32 MB are still mapped and unmapped each time. Linux with glibc only; skipped when the user set glibc's
    // MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_ or SHARPTUNE_KEEP_FREED_MEMORY=0.
    private static void KeepFreedMemory()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(KeepFreedMemoryVariable) == "0"
            || Environment.GetEnvironmentVariable("MALLOC_TRIM_THRESHOLD_") is not null
            || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null) return;
        const int TrimThreshold = -1, MmapThreshold = -3;
        try
        {
            KeepsFreedMemory = Mallopt(MmapThreshold, 32 << 20) == 1 & Mallopt(TrimThreshold, int.MaxValue) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (musl, for one): its allocator is left alone.
        }
    }

    [DllImport("libc.so.6", EntryPoint = "mallopt")]
    private static extern int Mallopt(int parameter, int value);

    private static string Load()
    {
        try
        {
            using var probe = torch.zeros(1);
            // libtorch's default is the physical cores as MKL counts them, which can leave logical CPUs idle.
            torch.set_num_threads(Threads);
            KeepFreedMemory();
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
