using System.Globalization;
using System.Runtime.InteropServices;

namespace SharpTune.Checkpoints;

/// <summary>
/// A directory written as a whole — a run directory, a model directory, a checkpoint: the files go into a temporary
/// sibling (<c>.NAME.tmp-PID-…</c>), which is flushed to disk and then takes the target's place in one rename. A
/// previous directory of that name survives until then, intact: on Linux the two are swapped atomically
/// (<c>renameat2</c> with <c>RENAME_EXCHANGE</c>) and the old one is deleted afterwards; a crash, a failed write or
/// Ctrl-C at any point leaves either the old directory or the new one, never a mix, plus at most a temporary sibling
/// that the next write of the same target removes. Nothing else in SharpTune writes a directory in place.
/// <code>
/// StagedDirectory.Write("runs/a", dir => File.WriteAllText(Path.Combine(dir, "x.json"), "{}"));
/// </code>
/// </summary>
public sealed class StagedDirectory : IDisposable
{
    private const string TemporaryMarker = ".tmp-";
    private readonly bool overwrite;

    private StagedDirectory(string target, string path, bool overwrite)
    {
        Target = target;
        Path = path;
        this.overwrite = overwrite;
    }

    /// <summary>The directory being written (full path).</summary>
    public string Target { get; }

    /// <summary>The temporary sibling to write into until <see cref="Commit"/>.</summary>
    public string Path { get; }

    /// <summary>True once <see cref="Commit"/> has put the directory in place.</summary>
    public bool Committed { get; private set; }

    /// <summary>
    /// Starts writing <paramref name="target"/>: checks it and creates the temporary sibling. Without
    /// <paramref name="overwrite"/>, a target that exists and is not empty is an error naming it (checked again at
    /// <see cref="Commit"/>); a file of that name always is.
    /// </summary>
    public static StagedDirectory Begin(string target, bool overwrite = true)
    {
        string full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(target));
        string parent = System.IO.Path.GetDirectoryName(full)
            ?? throw new SharpTuneException($"{target}: a file-system root cannot be written as a directory.");
        CheckTarget(target, full, overwrite);
        Directory.CreateDirectory(parent);
        string name = System.IO.Path.GetFileName(full);
        RemoveAbandoned(parent, name);
        string path = System.IO.Path.Combine(parent,
            $".{name}{TemporaryMarker}{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return new StagedDirectory(full, path, overwrite);
    }

    /// <summary>
    /// Writes <paramref name="target"/> as a whole: <paramref name="write"/> fills a temporary sibling (its argument),
    /// which then replaces the target (see the class). When <paramref name="write"/> throws, the target is untouched.
    /// </summary>
    public static void Write(string target, Action<string> write, bool overwrite = true)
    {
        using var staged = Begin(target, overwrite);
        write(staged.Path);
        staged.Commit();
    }

    /// <summary>
    /// Flushes every file to disk and puts the directory in place of <see cref="Target"/>; a previous one is deleted
    /// after the swap.
    /// </summary>
    public void Commit()
    {
        if (Committed) throw new InvalidOperationException($"{Target}: already committed.");
        FlushTree(Path);
        CheckTarget(Target, Target, overwrite);
        string parent = System.IO.Path.GetDirectoryName(Target)!;
        if (!overwrite)
        {
            // rename(2) itself refuses a non-empty target, so a directory another process completed meanwhile is kept.
            if (Directory.Exists(Target)) Directory.Delete(Target); // empty (checked above)
            try
            {
                Directory.Move(Path, Target);
            }
            catch (IOException e)
            {
                throw new SharpTuneException($"{Target}: was written by another process meanwhile; kept it ({e.Message}).", e);
            }
            Committed = true;
            Native.FlushDirectory(parent);
        }
        else if (Directory.Exists(Target))
        {
            string old = Path; // after the swap the temporary name holds the previous directory
            if (!Native.Exchange(Path, Target))
            {
                // No atomic swap here (not Linux, or a file system without it): move the old one aside first. A crash
                // between the two renames leaves it under the .tmp- name, whole.
                old = System.IO.Path.Combine(parent, $".{System.IO.Path.GetFileName(Target)}{TemporaryMarker}{Environment.ProcessId}-{Guid.NewGuid():N}");
                Directory.Move(Target, old);
                Directory.Move(Path, Target);
            }
            Committed = true;
            Native.FlushDirectory(parent);
            TryDelete(old);
        }
        else
        {
            Directory.Move(Path, Target);
            Committed = true;
            Native.FlushDirectory(parent);
        }
    }

    /// <summary>Removes the temporary sibling unless committed: the target stays as it was.</summary>
    public void Dispose()
    {
        if (!Committed) TryDelete(Path);
    }

    private static void CheckTarget(string shown, string full, bool overwrite)
    {
        if (File.Exists(full)) throw new SharpTuneException($"{shown}: is a file; expected a directory.");
        if (!overwrite && Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new SharpTuneException($"{shown}: already exists and is not empty; choose another directory or allow replacing it (CLI: --overwrite).");
    }

    // Temporary siblings of the target whose process is gone (killed mid-write) are removed.
    private static void RemoveAbandoned(string parent, string name)
    {
        foreach (string candidate in Directory.EnumerateDirectories(parent, $".{name}{TemporaryMarker}*"))
        {
            string rest = System.IO.Path.GetFileName(candidate)[(name.Length + 1 + TemporaryMarker.Length)..];
            int dash = rest.IndexOf('-', StringComparison.Ordinal);
            if (dash > 0 && int.TryParse(rest[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && !IsRunning(pid))
                TryDelete(candidate);
        }
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        if (OperatingSystem.IsLinux()) return Directory.Exists($"/proc/{pid}");
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static void FlushTree(string directory)
    {
        foreach (string file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, bufferSize: 1);
            stream.Flush(flushToDisk: true);
        }
        foreach (string sub in Directory.EnumerateDirectories(directory, "*", SearchOption.AllDirectories)) Native.FlushDirectory(sub);
        Native.FlushDirectory(directory);
    }

    private static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left for the next write of the same target (RemoveAbandoned) once this process is gone.
        }
    }

    /// <summary>The two Linux calls .NET does not expose: an atomic swap of two paths, and fsync of a directory.</summary>
    private static class Native
    {
        private const int AtFdCwd = -100, RenameExchange = 2, ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY (x86-64)

        [DllImport("libc", SetLastError = true)]
        private static extern int renameat2(int oldDirectory, [MarshalAs(UnmanagedType.LPUTF8Str)] string oldPath,
            int newDirectory, [MarshalAs(UnmanagedType.LPUTF8Str)] string newPath, uint flags);

        [DllImport("libc", SetLastError = true)]
        private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        private static extern int fsync(int descriptor);

        [DllImport("libc", SetLastError = true)]
        private static extern int close(int descriptor);

        /// <summary>Swaps the two directories atomically; false when this system cannot (then nothing changed).</summary>
        public static bool Exchange(string first, string second)
        {
            if (!OperatingSystem.IsLinux()) return false;
            try
            {
                if (renameat2(AtFdCwd, first, AtFdCwd, second, RenameExchange) == 0) return true;
            }
            catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
            {
                return false;
            }
            int error = Marshal.GetLastPInvokeError();
            const int NotSupported = 22, NoSystemCall = 38, NotSupportedOperation = 95; // EINVAL, ENOSYS, EOPNOTSUPP
            if (error is NotSupported or NoSystemCall or NotSupportedOperation) return false;
            throw new IOException($"{second}: could not swap in {first}: {Marshal.GetPInvokeErrorMessage(error)}.");
        }

        /// <summary>fsync of a directory, so that renames and new entries in it survive a power loss (Linux only).</summary>
        public static void FlushDirectory(string directory)
        {
            if (!OperatingSystem.IsLinux()) return;
            int descriptor = open(directory, ReadOnlyDirectory);
            if (descriptor < 0) return; // best effort: the data files themselves were flushed
            fsync(descriptor);
            close(descriptor);
        }
    }
}
