namespace SharpTune.Checkpoints;

/// <summary>
/// An advisory lock on a directory that one process writes over a long time (a training run and its checkpoints), so
/// that a second writer fails at once instead of the last one to finish silently replacing the other's work. The lock is
/// the file <c>.NAME.lock</c> beside the directory, opened with <see cref="FileShare.None"/> for as long as the lock is
/// held: on Linux and macOS .NET takes an exclusive <c>flock(2)</c> on it, which the kernel releases when the process
/// ends, however it ends (a SIGKILLed run leaves no stale lock); on Windows the share mode does the same. A second
/// holder — another process, or a second <see cref="Acquire"/> in this one — gets a <see cref="SharpTuneException"/>
/// naming the directory. The holder deletes the lock file when it lets go (while still holding it); a process killed
/// meanwhile leaves it behind, empty, and that blocks nothing: only a held lock does. A holder that finds its file
/// deleted under it (it opened the file just before the previous holder let go) starts over on a new one. It is advisory:
/// only writers that take it are kept out (and .NET's <c>DOTNET_SYSTEM_IO_DISABLEFILELOCKING</c> turns it off).
/// </summary>
public sealed class DirectoryLock : IDisposable
{
    private readonly FileStream file;

    private DirectoryLock(string target, string lockFile, FileStream file)
    {
        Target = target;
        LockFile = lockFile;
        this.file = file;
    }

    /// <summary>The locked directory (full path; it need not exist).</summary>
    public string Target { get; }

    /// <summary>The lock file, <c>.NAME.lock</c> beside <see cref="Target"/>.</summary>
    public string LockFile { get; }

    /// <summary>The lock file of <paramref name="target"/>.</summary>
    public static string LockFileOf(string target)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));
        string parent = Path.GetDirectoryName(full) ?? throw new SharpTuneException($"{target}: a file-system root cannot be written as a directory.");
        return Path.Combine(parent, "." + Path.GetFileName(full) + ".lock");
    }

    /// <summary>
    /// Takes the lock of <paramref name="target"/> (creating its parent directory and the lock file when missing), or
    /// throws a <see cref="SharpTuneException"/> naming <paramref name="target"/> (after <paramref name="flag"/>, the CLI
    /// option that gave it, when set) when another holder has it.
    /// </summary>
    public static DirectoryLock Acquire(string target, string? flag = null)
    {
        string lockFile = LockFileOf(target);
        Directory.CreateDirectory(Path.GetDirectoryName(lockFile)!);
        try
        {
            while (true)
            {
                var file = new FileStream(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1, FileOptions.DeleteOnClose);
                if (File.Exists(lockFile)) return new DirectoryLock(Path.TrimEndingDirectorySeparator(Path.GetFullPath(target)), lockFile, file);
                file.Dispose(); // locked a file the previous holder had just deleted: take a new one
            }
        }
        catch (IOException e) when (e is not (FileNotFoundException or DirectoryNotFoundException or PathTooLongException))
        {
            throw new SharpTuneException($"{(flag is null ? "" : flag + " ")}{target}: another process is writing this directory (it holds {lockFile}); " +
                $"wait for it to finish, or write elsewhere ({e.Message})", e);
        }
    }

    /// <summary>Deletes the lock file and releases the lock.</summary>
    public void Dispose() => file.Dispose();
}
