namespace SharpTune.Tokenization;

/// <summary>
/// The tokenizer contract, as Hugging Face's <c>tokenizers</c> pipeline has it: special tokens matched literally in the
/// raw text, then each architecture's normalizer, pre-tokenizer and model (<see cref="TokenizeText"/>: WordPiece,
/// byte-level BPE, SentencePiece Unigram), then the <see cref="TemplateProcessor"/> (truncation and special tokens),
/// then padding — each stage once. <see cref="FromDirectory"/> picks the implementation from a model directory's
/// files. Implementations are immutable and thread-safe.
/// </summary>
public abstract class Tokenizer
{
    private readonly (string Text, int Id)[] _specialTokens; // longest first, for leftmost-longest matching
    private readonly System.Buffers.SearchValues<char> _specialFirstChars; // skips text that cannot start one

    /// <summary>Creates the shared stages: the template and the special tokens matched literally in texts.</summary>
    protected Tokenizer(TemplateProcessor template, IEnumerable<(string Text, int Id)> specialTokens, int modelMaxLength)
    {
        Template = template;
        _specialTokens = specialTokens.Where(s => s.Text.Length > 0).DistinctBy(s => s.Text).OrderByDescending(s => s.Text.Length).ToArray();
        _specialFirstChars = System.Buffers.SearchValues.Create(_specialTokens.Select(s => s.Text[0]).Distinct().ToArray());
        ModelMaxLength = modelMaxLength;
    }

    /// <summary>The post-processor: truncation and special tokens.</summary>
    public TemplateProcessor Template { get; }
    /// <summary>Id of the padding token.</summary>
    public int PadTokenId => Template.PadId;
    /// <summary>Longest input the model accepts (<c>model_max_length</c>).</summary>
    public int ModelMaxLength { get; }
    /// <summary>Number of ids (the vocabulary, added tokens included).</summary>
    public abstract int VocabSize { get; }
    /// <summary>Special tokens (text, id) that are never split and are matched literally in texts.</summary>
    public IReadOnlyList<(string Text, int Id)> SpecialTokens => _specialTokens;

    /// <summary>The token of <paramref name="id"/>, or null.</summary>
    public abstract string? IdToToken(int id);
    /// <summary>The id of <paramref name="token"/>, or null.</summary>
    public abstract int? TokenToId(string token);

    /// <summary>Writes the tokenizer's files into <paramref name="directory"/> so that this class and Python's <c>AutoTokenizer</c> load them.</summary>
    public abstract void Save(string directory);

    /// <summary>
    /// The model stage over a text that holds no special token: normalizer, pre-tokenizer and model. Appends the
    /// pieces with offsets into <paramref name="text"/> and word indexes from <paramref name="firstWord"/>; returns the
    /// next free word index. <paramref name="asWord"/>: the text is one pre-split word (HF's <c>is_split_into_words</c>).
    /// </summary>
    protected abstract int TokenizeText(string text, List<Piece> pieces, int firstWord, bool asWord);

    /// <summary>Appends the pieces of <paramref name="text"/>: special tokens matched literally (leftmost-longest), the rest tokenized.</summary>
    public virtual void Tokenize(string text, List<Piece> pieces)
    {
        ArgumentNullException.ThrowIfNull(text);
        int word = 0, segmentStart = 0, position = 0;
        while (_specialTokens.Length > 0 && position < text.Length)
        {
            int next = text.AsSpan(position).IndexOfAny(_specialFirstChars);
            if (next < 0) break;
            position += next;
            (string Text, int Id)? match = null;
            foreach (var special in _specialTokens)
                if (text.AsSpan(position).StartsWith(special.Text, StringComparison.Ordinal)) { match = special; break; }
            if (match is not { } found) { position++; continue; }
            word = Segment(text, segmentStart, position, pieces, word);
            pieces.Add(new Piece(found.Id, position, position + found.Text.Length, word++));
            position += found.Text.Length;
            segmentStart = position;
        }
        Segment(text, segmentStart, text.Length, pieces, word);
    }

    private int Segment(string text, int start, int end, List<Piece> pieces, int word)
    {
        if (end <= start) return word;
        if (start == 0 && end == text.Length) return TokenizeText(text, pieces, word, asWord: false);
        int first = pieces.Count;
        int next = TokenizeText(text[start..end], pieces, word, asWord: false);
        for (int i = first; i < pieces.Count; i++) pieces[i] = pieces[i] with { Start = pieces[i].Start + start, End = pieces[i].End + start };
        return next;
    }

    /// <summary>The ids of <paramref name="text"/>'s tokens, without special tokens added.</summary>
    public int[] TokenizeToIds(string text)
    {
        var pieces = new List<Piece>();
        Tokenize(text, pieces);
        return pieces.Select(p => p.Id).ToArray();
    }

    /// <summary>Tokens of <paramref name="ids"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is not in the vocabulary.</exception>
    public string[] ConvertIdsToTokens(IEnumerable<long> ids) =>
        ids.Select(id => id is >= 0 and <= int.MaxValue && IdToToken((int)id) is { } token ? token
            : throw new ArgumentOutOfRangeException(nameof(ids), id, "Id not in the vocabulary.")).ToArray();

    /// <summary>
    /// Encodes one text, or a pair, with the architecture's special tokens, truncated to <paramref name="maxLength"/>
    /// ids with HF's <c>longest_first</c> strategy. Not padded.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxLength"/> leaves no room for the special tokens.</exception>
    public EncodedText Encode(string text, string? pair = null, int maxLength = 512)
    {
        ArgumentNullException.ThrowIfNull(text);
        var first = new List<Piece>();
        Tokenize(text, first);
        List<Piece>? second = null;
        if (pair is not null) { second = []; Tokenize(pair, second); }
        return Template.Apply(first, second, maxLength);
    }

    /// <summary>
    /// Encodes pre-split words (HF's <c>is_split_into_words</c>): each word is tokenized on its own, and
    /// <see cref="EncodedText.WordIds"/> gives each token's word; offsets are within each word.
    /// </summary>
    public EncodedText EncodeWords(IReadOnlyList<string> words, int maxLength = 512)
    {
        ArgumentNullException.ThrowIfNull(words);
        var pieces = new List<Piece>();
        for (int i = 0; i < words.Count; i++)
        {
            int before = pieces.Count;
            TokenizeText(words[i], pieces, i, asWord: true);
            for (int j = before; j < pieces.Count; j++) pieces[j] = pieces[j] with { Word = i };
        }
        return Template.Apply(pieces, null, maxLength);
    }

    /// <summary>
    /// Encodes every text (with its pair, if <paramref name="pairs"/> is given) and pads the rows to the longest one or to
    /// <paramref name="maxLength"/>, with the attention mask. Texts are encoded in parallel.
    /// </summary>
    public EncodedBatch EncodeBatch(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs = null, int maxLength = 512, PaddingMode padding = PaddingMode.Longest)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException($"pairs has {pairs.Count} entries but texts has {texts.Count}.", nameof(pairs));
        var rows = new EncodedText[texts.Count];
        if (texts.Count >= 32) Parallel.For(0, texts.Count, i => rows[i] = Encode(texts[i], pairs?[i], maxLength));
        else for (int i = 0; i < texts.Count; i++) rows[i] = Encode(texts[i], pairs?[i], maxLength);
        return EncodedBatch.Pad(rows.Select(r => (r.InputIds, r.TokenTypeIds, r.Length)).ToList(), PadTokenId,
            padding == PaddingMode.MaxLength ? maxLength : null);
    }

    /// <summary>
    /// Loads the tokenizer of a Hugging Face model directory: <c>tokenizer.json</c> when present (its <c>model.type</c>
    /// WordPiece, BPE or Unigram), else the legacy files: <c>vocab.txt</c> (WordPiece); <c>vocab.json</c> +
    /// <c>merges.txt</c> (byte-level BPE); <c>sentencepiece.bpe.model</c> or <c>spm.model</c> (SentencePiece).
    /// </summary>
    /// <exception cref="SharpTuneException">No tokenizer file is found, or one is malformed; the message names it.</exception>
    public static Tokenizer FromDirectory(string directory) => TokenizerFiles.Load(directory);
}
