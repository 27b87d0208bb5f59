using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenization;

/// <summary>
/// The pre-tokenizer and model stages of a GPT-2 / RoBERTa byte-level BPE tokenizer, id for id as Hugging Face's Rust
/// <c>tokenizers</c> computes them (no normalizer; ByteLevel pre-tokenizer with <c>use_regex</c>; BPE model): the text is
/// split with GPT-2's pattern <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>, each
/// split's UTF-8 bytes become the printable characters of <c>bytes_to_unicode</c> (a space is <c>Ġ</c>), and adjacent
/// symbols are merged by merge rank, lowest first, leftmost on ties. Special tokens and templates are not handled here.
/// </summary>
/// <remarks>
/// <para>Offsets are UTF-16 positions in the text. Every byte of a character maps to the whole character, so the tokens
/// of one split emoji share its offsets. They are trimmed as Rust's <c>trim_offsets=true</c> (RobertaProcessing) does:
/// a token's leading and trailing <c>Ġ</c> are left out of its offsets, so <c>Ġworld</c> in "Hello world" is (6, 11)
/// and a token of spaces only gets an empty range at its end; with a prefix space the first token keeps a single
/// leading <c>Ġ</c> (the space was added, not trimmed).</para>
/// <para>Instances are immutable apart from a bounded word cache and safe for concurrent <see cref="Tokenize"/> calls.</para>
/// </remarks>
public sealed class ByteLevelBpe
{
    // HF's BPE cache holds 10,000 words and stops adding when full; long words are rare and not worth a slot.
    private const int CacheCapacity = 10_000;
    private const int MaxCachedWordLength = 256;
    private const char SpaceSymbol = 'Ġ';

    private static readonly char[] ByteToChar = BuildByteToChar();

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _idToToken;
    private readonly Dictionary<long, (int Rank, int Id)> _merges;
    private readonly List<(string Left, string Right)> _mergeList;
    private readonly int[] _byteIds;
    private readonly bool _ignoreMerges;
    private readonly string _source;
    private readonly ConcurrentDictionary<string, Token[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Token[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private int _cached;

    /// <summary>One BPE token of a pre-tokenizer split: its id, how many UTF-8 bytes it covers, and its leading and trailing space bytes.</summary>
    private readonly record struct Token(int Id, int Bytes, int LeadingSpaces, int TrailingSpaces);

    private enum Kind { Space, Letter, Number, Other }

    private ByteLevelBpe(Dictionary<string, int> vocab, List<(string Left, string Right)> merges, Func<int, string> mergeLocation,
        string source, bool ignoreMerges)
    {
        _vocab = vocab;
        _source = source;
        _ignoreMerges = ignoreMerges;
        _idToToken = [];
        foreach (var (token, id) in vocab) _idToToken.TryAdd(id, token);
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        _mergeList = merges;
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            int leftId = MergeTokenId(left, rank), rightId = MergeTokenId(right, rank), newId = MergeTokenId(left + right, rank);
            // A repeated merge keeps its last rank, as HF's map built from the list does.
            _merges[PairKey(leftId, rightId)] = (rank, newId);
        }
        _byteIds = new int[256];
        for (int b = 0; b < 256; b++) _byteIds[b] = vocab.TryGetValue(ByteToChar[b].ToString(), out int id) ? id : -1;
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();

        int MergeTokenId(string token, int rank) => vocab.TryGetValue(token, out int id) ? id
            : throw new SharpTuneException($"{mergeLocation(rank)}: the merge's token \"{token}\" is not in the vocabulary.");
    }

    /// <summary>
    /// Whether a space is put before a text that does not start with one (the ByteLevel pre-tokenizer's <c>add_prefix_space</c>),
    /// so that its first word is tokenized like a word inside a sentence. RoBERTa and GPT-2: false. Set through the
    /// factories' <c>addPrefixSpace</c> argument.
    /// </summary>
    public bool AddPrefixSpace { get; init; }

    /// <summary>Number of tokens in the vocabulary (vocab.json's entries, special tokens included).</summary>
    public int VocabSize => _vocab.Count;

    /// <summary>The id of <paramref name="token"/> (in byte-level form, e.g. <c>Ġworld</c>), or null if it is not in the vocabulary.</summary>
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    /// <summary>The token (in byte-level form) with id <paramref name="id"/>, or null if no token has it.</summary>
    public string? IdToToken(int id) => _idToToken.TryGetValue(id, out string? token) ? token : null;

    /// <summary>Loads HF's <c>vocab.json</c> (token → id) and <c>merges.txt</c> (one "left right" merge a line, rank = order, optional <c>#version</c> first line).</summary>
    /// <param name="vocabJsonPath">vocab.json.</param>
    /// <param name="mergesTxtPath">merges.txt.</param>
    /// <param name="addPrefixSpace"><see cref="AddPrefixSpace"/> (tokenizer_config.json's <c>add_prefix_space</c>; RoBERTa: false).</param>
    /// <exception cref="SharpTuneException">A file is missing or malformed, or a merge names a token that is not in the vocabulary; the message names the file and line or key.</exception>
    public static ByteLevelBpe FromFiles(string vocabJsonPath, string mergesTxtPath, bool addPrefixSpace = false)
    {
        JsonObject vocabJson = ReadJsonObject(vocabJsonPath);
        Dictionary<string, int> vocab = ReadVocab(vocabJson, vocabJsonPath, "");
        if (!File.Exists(mergesTxtPath)) throw new SharpTuneException($"{mergesTxtPath}: merges file not found.");
        string[] lines = File.ReadAllText(mergesTxtPath, Encoding.UTF8).Split('\n');
        var merges = new List<(string, string)>(lines.Length);
        var lineNumbers = new List<int>(lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            // HF skips the "#version: 0.2" header; blank lines (the file's final newline) carry no merge.
            if (line.Length == 0 || (i == 0 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            string[] parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new SharpTuneException($"{mergesTxtPath}:{i + 1}: expected two tokens separated by one space, got \"{line}\".");
            merges.Add((parts[0], parts[1]));
            lineNumbers.Add(i + 1);
        }
        return new ByteLevelBpe(vocab, merges, rank => $"{mergesTxtPath}:{lineNumbers[rank]}", vocabJsonPath, ignoreMerges: false)
        {
            AddPrefixSpace = addPrefixSpace,
        };
    }

    /// <summary>
    /// Loads the <c>"model"</c> object of a <c>tokenizer.json</c> whose type is <c>BPE</c>: <c>vocab</c> and <c>merges</c>
    /// (<c>"left right"</c> strings or <c>["left", "right"]</c> arrays), and <c>ignore_merges</c>. Options that byte-level
    /// RoBERTa / GPT-2 tokenizers do not use (dropout, a continuing-subword prefix or end-of-word suffix) are rejected.
    /// </summary>
    /// <param name="model">The <c>model</c> object.</param>
    /// <param name="source">The file it came from, for error messages.</param>
    /// <param name="addPrefixSpace"><see cref="AddPrefixSpace"/>: the ByteLevel pre_tokenizer's <c>add_prefix_space</c> (it is not part of the model object).</param>
    /// <exception cref="SharpTuneException">A key is missing, malformed or unsupported; the message names <paramref name="source"/> and the key.</exception>
    public static ByteLevelBpe FromTokenizerJson(JsonObject model, string source, bool addPrefixSpace = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        string? type = StringOrNull(model, "type", source);
        if (type is not null and not "BPE") throw new SharpTuneException($"{source}: model.type is \"{type}\", expected \"BPE\".");
        if (model["dropout"] is JsonValue dropout && (dropout.GetValueKind() != JsonValueKind.Number || dropout.ToJsonString() is not ("0" or "0.0")))
            throw new SharpTuneException($"{source}: model.dropout is {dropout.ToJsonString()}; BPE dropout is a training-time option and is not supported (use null).");
        foreach (string key in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (StringOrNull(model, key, source) is { Length: > 0 } value)
                throw new SharpTuneException($"{source}: model.{key} is \"{value}\"; byte-level BPE uses none (null or \"\").");
        }
        bool ignoreMerges = model["ignore_merges"] is JsonValue ignore && (ignore.TryGetValue(out bool flag)
            ? flag : throw new SharpTuneException($"{source}: model.ignore_merges must be true or false."));

        if (model["vocab"] is not JsonObject vocabJson) throw new SharpTuneException($"{source}: model.vocab is missing or not an object.");
        Dictionary<string, int> vocab = ReadVocab(vocabJson, source, "model.vocab");
        if (model["merges"] is not JsonArray mergesJson) throw new SharpTuneException($"{source}: model.merges is missing or not an array.");
        var merges = new List<(string, string)>(mergesJson.Count);
        for (int i = 0; i < mergesJson.Count; i++)
        {
            JsonNode? item = mergesJson[i];
            string[]? parts = item switch
            {
                JsonValue v when v.TryGetValue(out string? s) => s.Split(' '),
                JsonArray a when a.All(x => x is JsonValue xv && xv.TryGetValue(out string? _)) => a.Select(x => x!.GetValue<string>()).ToArray(),
                _ => null,
            };
            if (parts is not [{ Length: > 0 } left, { Length: > 0 } right])
                throw new SharpTuneException($"{source}: model.merges[{i}] is {item?.ToJsonString() ?? "null"}; expected \"left right\" or [\"left\", \"right\"].");
            merges.Add((left, right));
        }
        return new ByteLevelBpe(vocab, merges, rank => $"{source}: model.merges[{rank}]", source, ignoreMerges) { AddPrefixSpace = addPrefixSpace };
    }

    /// <summary>
    /// Appends the pieces of <paramref name="text"/> to <paramref name="pieces"/>: ids, UTF-16 offsets in
    /// <paramref name="text"/> (trimmed, see the class remarks) and word indexes counted from <paramref name="firstWord"/>,
    /// one word per pre-tokenizer split.
    /// </summary>
    /// <param name="text">Text without special tokens.</param>
    /// <param name="pieces">Receives the pieces.</param>
    /// <param name="firstWord">Word index of the first split.</param>
    /// <param name="asWord">
    /// The text is one pre-split word (HF <c>is_split_into_words</c>): a space is put before it unless it starts with one,
    /// as <c>RobertaTokenizerFast</c> with <c>add_prefix_space</c> does, and all its pieces get word <paramref name="firstWord"/>.
    /// </param>
    /// <exception cref="SharpTuneException">The vocabulary lacks the token of a byte of the text (it names the vocabulary file and the byte).</exception>
    public void Tokenize(string text, List<Piece> pieces, int firstWord = 0, bool asWord = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(pieces);
        bool prefixSpace = asWord || AddPrefixSpace;
        // As HF's ByteLevel: only a text that does not already start with a space gets one (an empty text stays empty).
        bool prepended = prefixSpace && text.Length > 0 && text[0] != ' ';
        string s = prepended ? " " + text : text;
        int shift = prepended ? 1 : 0;
        int firstPiece = pieces.Count;
        int word = firstWord;
        for (int start = 0; start < s.Length;)
        {
            int end = NextSplitEnd(s, start);
            Token[] tokens = Encode(s.AsSpan(start, end - start));

            // Walk the split's code points alongside the tokens' bytes: a token spans from the character holding its
            // first byte to the one holding its last.
            int cp = start, cpByteStart = 0, consumed = 0;
            int cpBytes = Utf8Length(s, cp, out int cpChars);
            foreach (Token token in tokens)
            {
                int firstByte = consumed, lastByte = consumed + token.Bytes - 1;
                while (firstByte >= cpByteStart + cpBytes) { cpByteStart += cpBytes; cp += cpChars; cpBytes = Utf8Length(s, cp, out cpChars); }
                int tokenStart = cp;
                while (lastByte >= cpByteStart + cpBytes) { cpByteStart += cpBytes; cp += cpChars; cpBytes = Utf8Length(s, cp, out cpChars); }
                int tokenEnd = cp + cpChars;
                consumed += token.Bytes;

                // The added prefix space maps to the empty range (0, 0) of the text, as in HF's NormalizedString.prepend.
                int startOffset = Math.Max(tokenStart - shift, 0), endOffset = Math.Max(tokenEnd - shift, 0);
                (startOffset, endOffset) = TrimOffsets(token, startOffset, endOffset, pieces.Count == firstPiece, prefixSpace);
                pieces.Add(new Piece(token.Id, startOffset, endOffset, word));
            }
            if (!asWord) word++;
            start = end;
        }
    }

    /// <summary>
    /// Writes <c>vocab.json</c> and <c>merges.txt</c> into <paramref name="directory"/> (created if missing) as transformers'
    /// <c>RobertaTokenizer.save_vocabulary</c> does: keys sorted, two-space indent, UTF-8 unescaped; merges after a
    /// <c>#version: 0.2</c> line in rank order. LF line ends.
    /// </summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var vocab = new StringBuilder();
        if (_vocab.Count == 0) vocab.Append("{}");
        else
        {
            vocab.Append("{\n");
            var keys = _vocab.Keys.ToList();
            keys.Sort(CompareCodePoints);
            for (int i = 0; i < keys.Count; i++)
            {
                vocab.Append("  ");
                AppendJsonString(vocab, keys[i]);
                vocab.Append(": ").Append(_vocab[keys[i]].ToString(CultureInfo.InvariantCulture)).Append(i + 1 < keys.Count ? ",\n" : "\n");
            }
            vocab.Append('}');
        }
        vocab.Append('\n');
        var utf8 = new UTF8Encoding(false);
        File.WriteAllText(Path.Combine(directory, "vocab.json"), vocab.ToString(), utf8);

        var merges = new StringBuilder("#version: 0.2\n");
        for (int rank = 0; rank < _mergeList.Count; rank++)
        {
            var (left, right) = _mergeList[rank];
            // Of a repeated merge only the copy whose rank counts is written.
            if (_merges[PairKey(_vocab[left], _vocab[right])].Rank != rank) continue;
            merges.Append(left).Append(' ').Append(right).Append('\n');
        }
        File.WriteAllText(Path.Combine(directory, "merges.txt"), merges.ToString(), utf8);
    }

    /// <summary>The tokens of one pre-tokenizer split, from the cache or by BPE.</summary>
    private Token[] Encode(ReadOnlySpan<char> split)
    {
        if (_cacheLookup.TryGetValue(split, out Token[]? cached)) return cached;
        Token[] tokens = Merge(split);
        if (split.Length <= MaxCachedWordLength && Volatile.Read(ref _cached) < CacheCapacity && _cacheLookup.TryAdd(split, tokens))
            Interlocked.Increment(ref _cached);
        return tokens;
    }

    private Token[] Merge(ReadOnlySpan<char> split)
    {
        // Lone surrogates become U+FFFD's bytes, as when a .NET string is handed to Rust as UTF-8.
        int byteCount = Encoding.UTF8.GetByteCount(split);
        byte[]? rented = null;
        Span<byte> bytes = byteCount <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(byteCount));
        try
        {
            bytes = bytes[..Encoding.UTF8.GetBytes(split, bytes)];
            int n = bytes.Length;
            var ids = new int[n];
            var lengths = new int[n];
            for (int i = 0; i < n; i++)
            {
                ids[i] = _byteIds[bytes[i]];
                lengths[i] = 1;
                if (ids[i] < 0)
                    throw new SharpTuneException($"{_source}: the vocabulary has no token \"{ByteToChar[bytes[i]]}\" for byte 0x{bytes[i]:X2} (in \"{split}\"); byte-level BPE needs all 256.");
            }
            if (_ignoreMerges && n > 1)
            {
                var symbols = new StringBuilder(n);
                foreach (byte b in bytes) symbols.Append(ByteToChar[b]);
                if (_vocab.TryGetValue(symbols.ToString(), out int whole)) { ids[0] = whole; lengths[0] = n; n = 1; }
            }

            // ranks[i]: merge rank of the pair (symbol i, symbol i + 1), int.MaxValue when they do not merge.
            var ranks = new int[Math.Max(n - 1, 0)];
            for (int i = 0; i + 1 < n; i++) ranks[i] = RankOf(ids[i], ids[i + 1]);
            while (n > 1)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < n; i++)
                {
                    if (ranks[i] < bestRank) { bestRank = ranks[i]; best = i; }
                }
                if (best < 0) break;
                ids[best] = _merges[PairKey(ids[best], ids[best + 1])].Id;
                lengths[best] += lengths[best + 1];
                Array.Copy(ids, best + 2, ids, best + 1, n - best - 2);
                Array.Copy(lengths, best + 2, lengths, best + 1, n - best - 2);
                if (n - best - 3 > 0) Array.Copy(ranks, best + 2, ranks, best + 1, n - best - 3);
                n--;
                if (best > 0) ranks[best - 1] = RankOf(ids[best - 1], ids[best]);
                if (best + 1 < n) ranks[best] = RankOf(ids[best], ids[best + 1]);
            }

            var tokens = new Token[n];
            for (int i = 0, at = 0; i < n; at += lengths[i], i++)
            {
                ReadOnlySpan<byte> span = bytes.Slice(at, lengths[i]);
                int leading = 0, trailing = 0;
                while (leading < span.Length && span[leading] == (byte)' ') leading++;
                while (trailing < span.Length && span[^(trailing + 1)] == (byte)' ') trailing++;
                tokens[i] = new Token(ids[i], lengths[i], leading, trailing);
            }
            return tokens;
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private int RankOf(int left, int right) => _merges.TryGetValue(PairKey(left, right), out var merge) ? merge.Rank : int.MaxValue;

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>
    /// Rust's ByteLevel <c>process_offsets</c> with trim_offsets: drop the token's leading and trailing <c>Ġ</c> from its
    /// offsets, except a single leading one of the first token when a prefix space is in use (that space was added).
    /// </summary>
    private static (int Start, int End) TrimOffsets(Token token, int start, int end, bool firstOfText, bool prefixSpace)
    {
        int leading = token.LeadingSpaces;
        if (leading > 0)
        {
            // Words of a pre-split input each start at offset 0, so "first" also means "starts at 0", as in Rust.
            if ((firstOfText || start == 0) && prefixSpace && leading == 1) leading = 0;
            start = Math.Min(start + leading, end);
        }
        if (token.TrailingSpaces > 0 && end >= token.TrailingSpaces) end = Math.Max(end - token.TrailingSpaces, start);
        return (start, end);
    }

    /// <summary>
    /// End of the GPT-2 pattern's match at <paramref name="start"/>, by hand: .NET's Regex sees the halves of a surrogate
    /// pair, so <c>\p{L}</c> would miss letters beyond U+FFFF (𝐀, CJK extension B) that HF's Oniguruma matches.
    /// </summary>
    private static int NextSplitEnd(string s, int start)
    {
        int n = s.Length;
        // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, as in GPT-2)
        if (s[start] == '\'' && start + 1 < n)
        {
            char c1 = s[start + 1];
            if (c1 is 's' or 't' or 'm' or 'd') return start + 2;
            if (start + 2 < n && ((c1 is 'r' or 'v' && s[start + 2] == 'e') || (c1 == 'l' && s[start + 2] == 'l'))) return start + 3;
        }
        // ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+': an optional U+0020 then a run of one class.
        int runStart = s[start] == ' ' && start + 1 < n && Classify(s, start + 1, out _) != Kind.Space ? start + 1 : start;
        Kind kind = Classify(s, runStart, out int width);
        if (kind != Kind.Space)
        {
            int end = runStart + width;
            while (end < n && Classify(s, end, out width) == kind) end += width;
            return end;
        }
        // '\s+(?!\S)|\s+': a run of white space, less its last character when a non-space follows (that space then
        // starts the next word, " word"), unless the run is that one character.
        int spaceEnd = start;
        while (spaceEnd < n && IsWhiteSpace(s[spaceEnd])) spaceEnd++;
        return spaceEnd == n || spaceEnd - start == 1 ? spaceEnd : spaceEnd - 1;
    }

    private static Kind Classify(string s, int i, out int width)
    {
        char c = s[i];
        UnicodeCategory category;
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            width = 2;
            category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(c, s[i + 1]));
        }
        else
        {
            width = 1;
            if (IsWhiteSpace(c)) return Kind.Space;
            category = CharUnicodeInfo.GetUnicodeCategory(c); // a lone surrogate is U+FFFD in the bytes: a symbol, Other
        }
        return category switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Kind.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Kind.Number,
            _ => Kind.Other,
        };
    }

    /// <summary>Oniguruma's Unicode <c>\s</c> (the White_Space property); all of it lies in the BMP.</summary>
    private static bool IsWhiteSpace(char c) =>
        c is (>= '\t' and <= '\r') or ' ' or '\u0085' or '\u00a0' or '\u1680' or (>= '\u2000' and <= '\u200a')
            or '\u2028' or '\u2029' or '\u202f' or '\u205f' or '\u3000';

    /// <summary>UTF-8 length of the code point at <paramref name="i"/> (a lone surrogate counts as U+FFFD, 3 bytes) and its UTF-16 length.</summary>
    private static int Utf8Length(string s, int i, out int chars)
    {
        chars = 1;
        if (i >= s.Length) return int.MaxValue / 2; // past the split: never reached by a token byte
        char c = s[i];
        if (c < 0x80) return 1;
        if (c < 0x800) return 2;
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { chars = 2; return 4; }
        return 3;
    }

    /// <summary>GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for U+0100 onwards in byte order.</summary>
    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= '!' and <= '~') or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    private static JsonObject ReadJsonObject(string path) =>
        File.Exists(path) ? StrictJson.ReadObject(path, "a JSON object (token → id)") : throw new SharpTuneException($"{path}: vocabulary file not found.");

    private static Dictionary<string, int> ReadVocab(JsonObject json, string source, string prefix)
    {
        var vocab = new Dictionary<string, int>(json.Count, StringComparer.Ordinal);
        foreach (var (token, value) in json)
        {
            // A parsed file holds JsonElement values, a built object CLR numbers: read the number from its JSON text.
            if (value is not JsonValue v || v.GetValueKind() != JsonValueKind.Number
                || !int.TryParse(v.ToJsonString(), NumberStyles.None, CultureInfo.InvariantCulture, out int id))
                throw new SharpTuneException($"{source}: {(prefix.Length > 0 ? prefix + "." : "")}\"{token}\" is {value?.ToJsonString() ?? "null"}; expected a non-negative integer id.");
            vocab[token] = id;
        }
        return vocab;
    }

    private static string? StringOrNull(JsonObject json, string key, string source) => json[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        var other => throw new SharpTuneException($"{source}: model.{key} is {other.ToJsonString()}; expected a string or null."),
    };

    /// <summary>Python's string order (by code point): a surrogate half stands for a code point above every BMP character.</summary>
    private static int CompareCodePoints(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            if (a[i] != b[i]) return Key(a[i]).CompareTo(Key(b[i]));
        }
        return a.Length.CompareTo(b.Length);

        static int Key(char c) => char.IsSurrogate(c) ? c + 0x10000 : c;
    }

    /// <summary>A JSON string as Python's json.dumps(ensure_ascii=False) writes it.</summary>
    private static void AppendJsonString(StringBuilder sb, string value)
    {
        sb.Append('"');
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case < ' ': sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)); break;
                default: sb.Append(c); break;
            }
        }
        sb.Append('"');
    }
}
