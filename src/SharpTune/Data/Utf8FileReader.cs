using System.Text;

namespace SharpTune.Data;

/// <summary>
/// Reads a UTF-8 file as text a block at a time, so that memory does not grow with the file: a leading BOM is dropped,
/// invalid bytes throw a <see cref="SharpTuneException"/> naming the file and line. <see cref="BytesRead"/> says how far
/// into the file it has read (for progress).
/// </summary>
internal sealed class Utf8FileReader : TextReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly string path;
    private readonly FileStream stream;
    private readonly Decoder decoder = StrictUtf8.GetDecoder();
    private readonly byte[] bytes = new byte[1 << 16];
    private readonly char[] chars = new char[StrictUtf8.GetMaxCharCount(1 << 16)];
    private int charPosition, charCount;
    private long newlinesBefore;
    private bool started, ended;

    /// <summary>Opens <paramref name="path"/> for reading.</summary>
    public Utf8FileReader(string path)
    {
        this.path = path;
        stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
    }

    /// <summary>Bytes of the file decoded so far (a block ahead of what the caller has read).</summary>
    public long BytesRead { get; private set; }

    /// <summary>The file's length in bytes.</summary>
    public long Length => stream.Length;

    /// <inheritdoc/>
    public override int Peek() => charPosition < charCount || Fill() ? chars[charPosition] : -1;

    /// <inheritdoc/>
    public override int Read() => charPosition < charCount || Fill() ? chars[charPosition++] : -1;

    /// <inheritdoc/>
    public override int Read(char[] buffer, int index, int count)
    {
        if (charPosition >= charCount && !Fill()) return 0;
        int n = Math.Min(count, charCount - charPosition);
        Array.Copy(chars, charPosition, buffer, index, n);
        charPosition += n;
        return n;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) stream.Dispose();
        base.Dispose(disposing);
    }

    // Decodes the next block; false at the end of the file.
    private bool Fill()
    {
        while (!ended)
        {
            int read = stream.ReadAtLeast(bytes, started ? 1 : 3, throwOnEndOfStream: false);
            int start = !started && bytes.AsSpan(0, read).StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? 3 : 0;
            started = true;
            ended = read == 0;
            try
            {
                charCount = decoder.GetChars(bytes, start, read - start, chars, 0, flush: ended);
            }
            catch (DecoderFallbackException e)
            {
                int offset = Math.Clamp(start + e.Index, 0, read);
                long line = newlinesBefore + bytes.AsSpan(0, offset).Count((byte)'\n') + 1;
                throw new SharpTuneException($"{path}:{line}: not valid UTF-8 (near byte {BytesRead + offset}); save the file as UTF-8.", e);
            }
            newlinesBefore += bytes.AsSpan(0, read).Count((byte)'\n');
            BytesRead += read;
            charPosition = 0;
            if (charCount > 0) return true;
        }
        return false;
    }
}
