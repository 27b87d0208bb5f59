using SharpTune.Checkpoints;

namespace SharpTune.Tests.Checkpoints;

public sealed class DirectoryLockTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("sharptune-lock-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public void A_second_holder_fails_at_once_naming_the_directory_until_the_first_releases_it()
    {
        string run = Path.Combine(folder, "runs", "a");
        using (var first = DirectoryLock.Acquire(run))
        {
            Assert.Equal(Path.Combine(folder, "runs", ".a.lock"), first.LockFile);
            var error = Assert.Throws<SharpTuneException>(() => DirectoryLock.Acquire(run + "/", "--out"));
            Assert.StartsWith($"--out {run}/: another process is writing this directory (it holds {first.LockFile})", error.Message);
            using var other = DirectoryLock.Acquire(Path.Combine(folder, "runs", "b")); // another directory is free
        }
        string lockFile = DirectoryLock.LockFileOf(run);
        Assert.False(File.Exists(lockFile)); // the holder deleted it
        Assert.False(Directory.Exists(run)); // locking does not create the directory

        // A lock file left by a process that was killed (no cleanup ran) is no lock.
        File.WriteAllText(lockFile, "");
        using (var again = DirectoryLock.Acquire(run)) Assert.True(File.Exists(again.LockFile));
        Assert.False(File.Exists(lockFile));
    }
}
