using System.Text;

namespace SharpTune;

/// <summary>
/// The one way SharpTune writes a file that others read: into a temporary sibling (<see cref="TemporaryPath"/>), then
/// moved over the target in one rename, so that a reader, a crash or a failed writer never leaves half a file — the
/// previous file stays whole until the new one replaces it, and the temporary file is removed on failure. Directories
/// written as a whole use <see cref="Checkpoints.StagedDirectory"/>. One writer per file per process at a time.
/// </summary>
public static class AtomicFile
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Writes <paramref name="path"/> from whatever <paramref name="writeTo"/> writes to the temporary path it is given.</summary>
    public static void Write(string path, Action<string> writeTo)
    {
        path = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temporary = TemporaryPath(path);
        try
        {
            writeTo(temporary);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary); // gone after the move; left only by a failure
        }
    }

    /// <summary>The temporary sibling <paramref name="path"/> is written through: <c>NAME.tmp-PID</c> (another process has its own).</summary>
    public static string TemporaryPath(string path) => $"{Path.GetFullPath(path)}.tmp-{Environment.ProcessId}";

    /// <summary>Writes <paramref name="path"/> from a stream.</summary>
    public static void WriteStream(string path, Action<Stream> write) => Write(path, temporary =>
    {
        using var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        write(stream);
    });

    /// <summary>Writes <paramref name="path"/> as UTF-8 text (no byte-order mark) from a writer.</summary>
    public static void WriteText(string path, Action<TextWriter> write) => WriteStream(path, stream =>
    {
        using var writer = new StreamWriter(stream, Utf8);
        write(writer);
    });

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> as UTF-8 (no byte-order mark).</summary>
    public static void WriteText(string path, string text) => WriteText(path, writer => writer.Write(text));
}
