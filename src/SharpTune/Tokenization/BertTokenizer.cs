using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace SharpTune.Tokenization;

/// <summary>
/// BERT's WordPiece tokenizer, giving the ids of Hugging Face's <c>BertTokenizerFast</c> (the Rust
/// <c>tokenizers</c> pipeline): special tokens matched literally in the raw text, then <c>BertNormalizer</c>
/// (clean text, CJK spacing, accent stripping, lowercasing), <c>BertPreTokenizer</c> (whitespace and
/// punctuation), greedy longest-match-first WordPiece with <c>##</c> continuations; the <c>[CLS] a [SEP] b [SEP]</c>
/// template is the shared <see cref="TemplateProcessor"/>. Immutable and thread-safe. Offsets: each token's own
/// characters when normalization kept the word's length (lowercasing, ASCII), else its whole word's span.
/// </summary>
public sealed partial class BertTokenizer : Tokenizer
{
    private const string ContinuationPrefix = "##";

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _wordStarts;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _continuations;
    private readonly int _longestWordStart;
    private readonly int _longestContinuation;
    private readonly string[] _idToToken;
    private readonly (string Text, int Id)[] _specialTokens; // longest first, for leftmost-longest matching
    private readonly string _specialFirstChars;
    private readonly bool _stripAccents;
    // Per non-ASCII code point: its NFD decomposition without non-spacing marks (only used when stripping accents).
    private readonly ConcurrentDictionary<int, string> _stripped = new();

    /// <summary>Creates a tokenizer over <paramref name="vocab"/> (token → id). <paramref name="source"/> names the vocabulary in errors.</summary>
    /// <exception cref="SharpTuneException">The vocabulary is empty or lacks the unknown, CLS, SEP or PAD token.</exception>
    public BertTokenizer(IReadOnlyDictionary<string, int> vocab, BertTokenizerOptions? options = null, string source = "vocabulary")
        : base(TemplateOf(vocab, options ?? new BertTokenizerOptions(), source), [], (options ?? new BertTokenizerOptions()).ModelMaxLength)
    {
        Options = options ?? new BertTokenizerOptions();
        if (vocab.Count == 0) throw new SharpTuneException($"{source}: the vocabulary is empty.");
        if (Options.MaxInputCharsPerWord <= 0) throw new SharpTuneException($"{source}: max_input_chars_per_word must be positive, got {Options.MaxInputCharsPerWord}.");
        if (Options.ModelMaxLength < 2) throw new SharpTuneException($"{source}: model_max_length must be at least 2, got {Options.ModelMaxLength}.");
        _vocab = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        _stripAccents = Options.EffectiveStripAccents;

        var continuations = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in _vocab)
        {
            if (id < 0) throw new SharpTuneException($"{source}: token '{token}' has a negative id {id}.");
            if (token.StartsWith(ContinuationPrefix, StringComparison.Ordinal) && token.Length > ContinuationPrefix.Length)
            {
                continuations[token[ContinuationPrefix.Length..]] = id;
                _longestContinuation = Math.Max(_longestContinuation, token.Length - ContinuationPrefix.Length);
            }
            _longestWordStart = Math.Max(_longestWordStart, token.Length);
        }
        _wordStarts = _vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _continuations = continuations.GetAlternateLookup<ReadOnlySpan<char>>();

        int size = _vocab.Values.Max() + 1;
        _idToToken = new string[size];
        foreach (var (token, id) in _vocab) _idToToken[id] = token;

        int Required(string field, string token)
        {
            if (!_vocab.TryGetValue(token, out int id))
                throw new SharpTuneException($"{source}: the {field} '{token}' is not in the vocabulary.");
            return id;
        }
        UnkTokenId = Required("unk_token", Options.UnkToken);
        ClsTokenId = Required("cls_token", Options.ClsToken);
        SepTokenId = Required("sep_token", Options.SepToken);
        Required("pad_token", Options.PadToken);
        MaskTokenId = _vocab.TryGetValue(Options.MaskToken, out int mask) ? mask : null;

        var specials = new List<(string, int)>();
        foreach (string token in new[] { Options.UnkToken, Options.SepToken, Options.PadToken, Options.ClsToken, Options.MaskToken }.Concat(Options.AdditionalSpecialTokens))
        {
            if (token.Length == 0 || specials.Any(s => s.Item1 == token)) continue;
            if (!_vocab.TryGetValue(token, out int id))
            {
                if (token == Options.MaskToken) continue;
                throw new SharpTuneException($"{source}: the additional special token '{token}' is not in the vocabulary.");
            }
            specials.Add((token, id));
        }
        _specialTokens = specials.OrderByDescending(s => s.Item1.Length).ToArray();
        _specialFirstChars = new string(_specialTokens.Select(s => s.Text[0]).Distinct().ToArray());
    }

    /// <summary>The settings this tokenizer runs with.</summary>
    public BertTokenizerOptions Options { get; }
    /// <summary>Number of distinct tokens in the vocabulary.</summary>
    public override int VocabSize => _vocab.Count;
    /// <summary>Id of the classification token.</summary>
    public int ClsTokenId { get; }
    /// <summary>Id of the separator token.</summary>
    public int SepTokenId { get; }
    /// <summary>Id of the unknown token.</summary>
    public int UnkTokenId { get; }
    /// <summary>Id of the mask token, or <c>null</c> if the vocabulary has none.</summary>
    public int? MaskTokenId { get; }
    /// <summary>The vocabulary, token → id.</summary>
    public IReadOnlyDictionary<string, int> Vocabulary => _vocab;

    /// <summary>The WordPiece tokens of <paramref name="text"/>, without <c>[CLS]</c>/<c>[SEP]</c>.</summary>
    public IReadOnlyList<string> Tokenize(string text) => TokenizeToIds(text).Select(id => _idToToken[id]).ToArray();

    /// <inheritdoc />
    public override string? IdToToken(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    /// <inheritdoc />
    public override int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    // The ids of the template, checked before the constructor body runs (it reports missing tokens by name).
    private static TemplateProcessor TemplateOf(IReadOnlyDictionary<string, int> vocab, BertTokenizerOptions options, string source)
    {
        int Id(string field, string token) => vocab.TryGetValue(token, out int id) ? id
            : throw new SharpTuneException($"{source}: the {field} '{token}' is not in the vocabulary.");
        if (vocab.Count == 0) throw new SharpTuneException($"{source}: the vocabulary is empty.");
        return TemplateProcessor.Bert(Id("cls_token", options.ClsToken), Id("sep_token", options.SepToken), Id("pad_token", options.PadToken));
    }

    /// <summary>Ids of <paramref name="tokens"/>; unknown tokens map to the unknown id.</summary>
    public int[] ConvertTokensToIds(IEnumerable<string> tokens) =>
        tokens.Select(t => _vocab.TryGetValue(t, out int id) ? id : UnkTokenId).ToArray();

    /// <summary>
    /// Joins the tokens of <paramref name="ids"/> with spaces and glues <c>##</c> continuations to the previous token
    /// (HF's <c>decode</c> without <c>clean_up_tokenization_spaces</c>). Lowercasing and stripped accents are not undone.
    /// </summary>
    public string Decode(IEnumerable<long> ids, bool skipSpecialTokens = true)
    {
        var text = new StringBuilder();
        foreach (long id in ids)
        {
            if (skipSpecialTokens && _specialTokens.Any(s => s.Id == id)) continue;
            string token = TokenOf(id);
            if (token.StartsWith(ContinuationPrefix, StringComparison.Ordinal) && text.Length > 0) text.Append(token, 2, token.Length - 2);
            else
            {
                if (text.Length > 0) text.Append(' ');
                text.Append(token);
            }
        }
        return text.ToString();
    }

    private string TokenOf(long id) =>
        id >= 0 && id < _idToToken.Length && _idToToken[id] is { } token ? token : throw new ArgumentOutOfRangeException(nameof(id), id, "Id not in the vocabulary.");

    // ---- Tokenization pipeline ----

    /// <summary>Splits off special tokens (matched literally, leftmost-longest, before any normalization), tokenizes the rest.</summary>
    public override void Tokenize(string text, List<Piece> pieces)
    {
        ArgumentNullException.ThrowIfNull(text);
        AppendPieces(text, pieces, 0);
    }

    /// <inheritdoc />
    protected override int TokenizeText(string text, List<Piece> pieces, int firstWord, bool asWord) => AppendPieces(text, pieces, firstWord);

    private int AppendPieces(string text, List<Piece> ids, int firstWord)
    {
        var word = new WordBuffer(stackalloc char[256]) { NextWord = firstWord };
        try
        {
            int segmentStart = 0, position = 0;
            while (position < text.Length)
            {
                int next = text.AsSpan(position).IndexOfAny(_specialFirstChars);
                if (next < 0) break;
                position += next;
                (string Text, int Id)? match = null;
                foreach (var special in _specialTokens)
                    if (text.AsSpan(position).StartsWith(special.Text, StringComparison.Ordinal)) { match = special; break; }
                if (match is not { } found) { position++; continue; }
                AppendSegment(text.AsSpan(segmentStart, position - segmentStart), segmentStart, ids, ref word);
                ids.Add(new Piece(found.Id, position, position + found.Text.Length, word.NextWord++));
                position += found.Text.Length;
                segmentStart = position;
            }
            AppendSegment(text.AsSpan(segmentStart), segmentStart, ids, ref word);
            return word.NextWord;
        }
        finally { word.Dispose(); }
    }

    /// <summary>BertNormalizer, BertPreTokenizer and WordPiece over a text holding no special token, in one pass.</summary>
    private void AppendSegment(ReadOnlySpan<char> text, int offset, List<Piece> ids, ref WordBuffer word)
    {
        bool clean = Options.CleanText, chinese = Options.TokenizeChineseChars;
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (c < 128)
            {
                word.Source = (offset + i, offset + i + 1);
                i++;
                // ASCII: no accents, no CJK; controls other than \t \n \r are dropped by clean-up.
                if (clean && c < 32 && c != '\t' && c != '\n' && c != '\r' || clean && c == 127) continue;
                if (Options.LowerCase && c is >= 'A' and <= 'Z') c = (char)(c + 32);
                if (c is ' ' or '\t' or '\n' or '\r' || c is '\v' or '\f') { FlushWord(ref word, ids); continue; }
                if (IsAsciiPunctuation(c)) { FlushWord(ref word, ids); word.Append(c); FlushWord(ref word, ids); continue; }
                word.Append(c);
                continue;
            }
            if (Rune.DecodeFromUtf16(text[i..], out Rune rune, out int consumed) != System.Buffers.OperationStatus.Done)
                rune = Rune.ReplacementChar; // a lone surrogate: Rust strings cannot hold one, HF reads it as U+FFFD
            word.Source = (offset + i, offset + i + consumed);
            i += consumed;
            if (clean)
            {
                if (rune.Value == 0xFFFD || IsOther(rune)) continue;
                if (Rune.IsWhiteSpace(rune)) { FlushWord(ref word, ids); continue; }
            }
            bool isChinese = chinese && IsChineseChar(rune.Value);
            if (isChinese) FlushWord(ref word, ids);
            if (_stripAccents)
            {
                foreach (Rune part in Stripped(rune).EnumerateRunes()) AppendNormalized(part, ids, ref word);
            }
            else AppendNormalized(rune, ids, ref word);
            if (isChinese) FlushWord(ref word, ids);
        }
        FlushWord(ref word, ids);
    }

    /// <summary>Lowercases one normalized code point and feeds it to the pre-tokenizer.</summary>
    private void AppendNormalized(Rune rune, List<Piece> ids, ref WordBuffer word)
    {
        if (Options.LowerCase)
        {
            // Rust's char::to_lowercase applies the one unconditional multi-character mapping: İ → i + U+0307.
            if (rune.Value == 0x130) { PreTokenize(new Rune('i'), ids, ref word); PreTokenize(new Rune(0x307), ids, ref word); return; }
            rune = Rune.ToLowerInvariant(rune);
        }
        PreTokenize(rune, ids, ref word);
    }

    private void PreTokenize(Rune rune, List<Piece> ids, ref WordBuffer word)
    {
        if (Rune.IsWhiteSpace(rune)) { FlushWord(ref word, ids); return; }
        if (IsPunctuation(rune))
        {
            FlushWord(ref word, ids);
            word.Append(rune);
            FlushWord(ref word, ids);
            return;
        }
        word.Append(rune);
    }

    private string Stripped(Rune rune) => _stripped.GetOrAdd(rune.Value, static value =>
    {
        string decomposed = new Rune(value).ToString().Normalize(NormalizationForm.FormD);
        var kept = new StringBuilder(decomposed.Length);
        foreach (Rune part in decomposed.EnumerateRunes())
            if (Rune.GetUnicodeCategory(part) != UnicodeCategory.NonSpacingMark) kept.Append(part.ToString());
        return kept.ToString();
    });

    /// <summary>WordPiece: greedy longest-match-first; a word with an unmatchable rest, or too long, is one unknown token.</summary>
    private void FlushWord(ref WordBuffer word, List<Piece> ids)
    {
        if (word.Length == 0) return;
        ReadOnlySpan<char> chars = word.Chars;
        int runes = word.RuneCount;
        var (wordStart, wordEnd) = (word.Start, word.End);
        int index = word.NextWord++;
        // Each piece's own characters when normalization kept the length, else the word's span.
        bool aligned = wordEnd - wordStart == chars.Length;
        word.Clear();
        if (runes > Options.MaxInputCharsPerWord) { ids.Add(new Piece(UnkTokenId, wordStart, wordEnd, index)); return; }
        int before = ids.Count;
        int start = 0;
        while (start < chars.Length)
        {
            bool first = start == 0;
            int longest = first ? _longestWordStart : _longestContinuation;
            int end = Math.Min(chars.Length, start + longest);
            int found = -1;
            while (end > start)
            {
                if (char.IsLowSurrogate(chars[end - 1]) || !char.IsHighSurrogate(chars[end - 1]))
                {
                    ReadOnlySpan<char> piece = chars[start..end];
                    if (first ? _wordStarts.TryGetValue(piece, out found) : _continuations.TryGetValue(piece, out found)) break;
                    found = -1;
                }
                end--;
            }
            if (found < 0)
            {
                ids.RemoveRange(before, ids.Count - before);
                ids.Add(new Piece(UnkTokenId, wordStart, wordEnd, index));
                return;
            }
            ids.Add(aligned ? new Piece(found, wordStart + start, wordStart + end, index) : new Piece(found, wordStart, wordEnd, index));
            start = end;
        }
    }

    // ---- Character classes, as HF tokenizers' BertNormalizer / BertPreTokenizer define them ----

    private static bool IsAsciiPunctuation(char c) => c is (>= '!' and <= '/') or (>= ':' and <= '@') or (>= '[' and <= '`') or (>= '{' and <= '~');

    /// <summary>ASCII punctuation and symbols, or any Unicode punctuation (P*) category.</summary>
    internal static bool IsPunctuation(Rune rune)
    {
        if (rune.IsAscii) return IsAsciiPunctuation((char)rune.Value);
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>Category C* (control, format, private use, surrogate; not unassigned) except tab, newline and carriage return.</summary>
    internal static bool IsOther(Rune rune)
    {
        if (rune.Value is '\t' or '\n' or '\r') return false;
        // Not OtherNotAssigned: HF's Rust tokenizers keep unassigned code points (the word becomes [UNK]); Python drops them.
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.PrivateUse
            or UnicodeCategory.Surrogate;
    }

    /// <summary>
    /// The CJK Unified Ideographs blocks as HF's Rust tokenizers list them (not Hangul, Hiragana or Katakana); Extension E
    /// starts at U+2B920 there (Python's table: U+2B820), and SharpTune follows Rust.
    /// </summary>
    internal static bool IsChineseChar(int cp) =>
        cp is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF) or (>= 0x20000 and <= 0x2A6DF) or (>= 0x2A700 and <= 0x2B73F)
            or (>= 0x2B740 and <= 0x2B81F) or (>= 0x2B920 and <= 0x2CEAF) or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);

    /// <summary>The characters of the word being built, with their code-point count; grows from a stack buffer into a pooled array.</summary>
    private ref struct WordBuffer
    {
        private Span<char> _chars;
        private char[]? _rented;

        public WordBuffer(Span<char> initial) { _chars = initial; _rented = null; Length = 0; RuneCount = 0; }

        public int Length { get; private set; }
        public int RuneCount { get; private set; }
        /// <summary>Offsets in the text of the input character being processed.</summary>
        public (int Start, int End) Source { get; set; }
        /// <summary>Offsets in the text of the word's first and after its last input character.</summary>
        public int Start { get; private set; }
        public int End { get; private set; }
        /// <summary>Index the next word gets.</summary>
        public int NextWord { get; set; }

        private void Track()
        {
            if (Length == 0) Start = Source.Start;
            End = Source.End;
        }
        public readonly ReadOnlySpan<char> Chars => _chars[..Length];

        public void Append(char c)
        {
            Track();
            if (Length == _chars.Length) Grow();
            _chars[Length++] = c;
            RuneCount++;
        }

        public void Append(Rune rune)
        {
            Track();
            if (Length + 2 > _chars.Length) Grow();
            Length += rune.EncodeToUtf16(_chars[Length..]);
            RuneCount++;
        }

        public void Clear() { Length = 0; RuneCount = 0; }

        private void Grow()
        {
            char[] bigger = System.Buffers.ArrayPool<char>.Shared.Rent(_chars.Length * 2);
            _chars[..Length].CopyTo(bigger);
            if (_rented is not null) System.Buffers.ArrayPool<char>.Shared.Return(_rented);
            _rented = bigger;
            _chars = bigger;
        }

        public void Dispose()
        {
            if (_rented is not null) System.Buffers.ArrayPool<char>.Shared.Return(_rented);
            _rented = null;
        }
    }
}
