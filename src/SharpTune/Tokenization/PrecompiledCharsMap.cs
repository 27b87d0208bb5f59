using System.Buffers.Binary;
using System.Text;

namespace SharpTune.Tokenization;

/// <summary>
/// SentencePiece's <c>precompiled_charsmap</c>: the normalization rules (nmt_nfkc and friends) compiled into a
/// darts-clone double-array trie over UTF-8 bytes, followed by a pool of NUL-terminated replacement strings.
/// Layout: u32 little-endian trie size in bytes, that many bytes of u32 trie units, then the pool; a trie value
/// is the offset of the replacement in the pool. Lookups follow Hugging Face's <c>spm_precompiled</c> crate
/// (what the Rust <c>Precompiled</c> normalizer uses), not sentencepiece's normalizer.cc: Rust takes the
/// <em>first</em> (shortest) matching prefix of the chunk and replaces the whole chunk with it.
/// Immutable and thread-safe.
/// </summary>
internal sealed class PrecompiledCharsMap
{
    private readonly uint[] _units;
    private readonly byte[] _pool;
    private readonly string _source;

    private PrecompiledCharsMap(uint[] units, byte[] pool, string source)
    {
        _units = units;
        _pool = pool;
        _source = source;
    }

    /// <summary>Parses <paramref name="blob"/>; <paramref name="source"/> (file and field) is named in errors.</summary>
    public static PrecompiledCharsMap Parse(byte[] blob, string source)
    {
        if (blob.Length < 4)
            throw new SharpTuneException($"{source}: precompiled_charsmap has {blob.Length} bytes, fewer than its 4-byte header.");
        uint trieBytes = BinaryPrimitives.ReadUInt32LittleEndian(blob);
        if (trieBytes < 4 || trieBytes > blob.Length - 4)
            throw new SharpTuneException($"{source}: precompiled_charsmap announces a trie of {trieBytes} bytes but holds {blob.Length - 4}.");
        var units = new uint[trieBytes / 4];
        for (int i = 0; i < units.Length; i++) units[i] = BinaryPrimitives.ReadUInt32LittleEndian(blob.AsSpan(4 + 4 * i));
        byte[] pool = blob.AsSpan(4 + (int)trieBytes).ToArray();
        try
        {
            new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(pool);
        }
        catch (DecoderFallbackException e)
        {
            throw new SharpTuneException($"{source}: precompiled_charsmap's replacement strings are not valid UTF-8.", e);
        }
        return new PrecompiledCharsMap(units, pool, source);
    }

    /// <summary>
    /// The replacement of <paramref name="utf8"/> (one grapheme or one code point, UTF-8), or null when the trie
    /// has no key that is a prefix of it. A NUL byte ends the key, as in the Rust crate.
    /// </summary>
    public string? Transform(ReadOnlySpan<byte> utf8)
    {
        int value = FirstPrefixValue(utf8);
        if (value < 0) return null;
        if (value > _pool.Length) throw Corrupt($"a replacement offset {value} beyond the {_pool.Length}-byte string pool");
        int end = _pool.AsSpan(value).IndexOf((byte)0);
        var bytes = _pool.AsSpan(value, end < 0 ? _pool.Length - value : end);
        try
        {
            return Strict.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Corrupt($"a replacement offset {value} inside a UTF-8 sequence");
        }
    }

    private static readonly UTF8Encoding Strict = new(false, throwOnInvalidBytes: true);

    // darts-clone unit layout: bits 0-7 label (bit 31 set on value units), bit 8 has-leaf, bit 9 offset shift flag,
    // bits 10-30 offset; a value unit holds the value in its low 31 bits.
    private int FirstPrefixValue(ReadOnlySpan<byte> key)
    {
        int nodePos = 0;
        nodePos ^= Offset(Unit(nodePos));
        foreach (byte c in key)
        {
            if (c == 0) break;
            nodePos ^= c;
            uint unit = Unit(nodePos);
            if ((unit & ((1u << 31) | 0xFF)) != c) return -1;
            nodePos ^= Offset(unit);
            if (((unit >> 8) & 1) == 1) return (int)(Unit(nodePos) & ((1u << 31) - 1));
        }
        return -1;
    }

    private static int Offset(uint unit) => (int)((unit >> 10) << (int)((unit & (1u << 9)) >> 6));

    private uint Unit(int index) =>
        (uint)index < (uint)_units.Length ? _units[index] : throw Corrupt($"a trie index {index} beyond its {_units.Length} units");

    private SharpTuneException Corrupt(string what) =>
        new($"{_source}: corrupt precompiled_charsmap: {what}.");
}
