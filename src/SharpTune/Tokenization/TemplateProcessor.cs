namespace SharpTune.Tokenization;

/// <summary>
/// The post-processor: truncation to a maximum length and the special tokens around one text or a pair, in one
/// place for every tokenizer. BERT style: <c>[CLS] A [SEP] B [SEP]</c>, the pair in segment 1 (also DeBERTa);
/// RoBERTa style: <c>&lt;s&gt; A &lt;/s&gt;&lt;/s&gt; B &lt;/s&gt;</c>, one segment (also XLM-RoBERTa).
/// </summary>
/// <param name="ClsId">Id of the token that opens the input ([CLS] or &lt;s&gt;).</param>
/// <param name="SepId">Id of the token that closes each text ([SEP] or &lt;/s&gt;).</param>
/// <param name="PadId">Id of the padding token.</param>
/// <param name="DoubleSeparator">True: the pair is separated by two separators (RoBERTa).</param>
/// <param name="PairSegment">True: the pair and its separator have token type 1 (BERT); false: every token has type 0.</param>
public sealed record TemplateProcessor(int ClsId, int SepId, int PadId, bool DoubleSeparator, bool PairSegment)
{
    /// <summary>BERT's template (also DistilBERT, ELECTRA, DeBERTa).</summary>
    public static TemplateProcessor Bert(int clsId, int sepId, int padId) => new(clsId, sepId, padId, false, true);

    /// <summary>RoBERTa's template (also XLM-RoBERTa).</summary>
    public static TemplateProcessor Roberta(int bosId, int eosId, int padId) => new(bosId, eosId, padId, true, false);

    /// <summary>Number of special tokens added to one text or a pair.</summary>
    public int Added(bool pair) => pair ? (DoubleSeparator ? 4 : 3) : 2;

    /// <summary>
    /// Truncates the pieces to <paramref name="maxLength"/> ids in all (HF's <c>longest_first</c>, as the Rust
    /// <c>tokenizers</c> do it) and adds the special tokens.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxLength"/> leaves no room for the special tokens.</exception>
    public EncodedText Apply(IReadOnlyList<Piece> first, IReadOnlyList<Piece>? second, int maxLength)
    {
        bool pair = second is not null;
        int added = Added(pair);
        if (maxLength < added) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, $"maxLength must leave room for the {added} special tokens.");
        int length = first.Count + (second?.Count ?? 0) + added;
        var (n1, n2) = TruncatedLengths(first.Count, second?.Count ?? 0, maxLength - added, pair);

        int total = n1 + n2 + added;
        var ids = new long[total];
        var types = new long[total];
        var special = new byte[total];
        var words = new int[total];
        var offsets = new (int, int)[total];
        var sequences = new int[total];
        int at = 0;
        void Special(int id, int type)
        {
            ids[at] = id; types[at] = type; special[at] = 1; words[at] = -1; sequences[at] = -1; at++;
        }
        void Text(IReadOnlyList<Piece> pieces, int count, int type, int sequence)
        {
            for (int i = 0; i < count; i++, at++)
            {
                ids[at] = pieces[i].Id; types[at] = type; words[at] = pieces[i].Word; offsets[at] = (pieces[i].Start, pieces[i].End); sequences[at] = sequence;
            }
        }
        Special(ClsId, 0);
        Text(first, n1, 0, 0);
        Special(SepId, 0);
        if (second is not null)
        {
            int type = PairSegment ? 1 : 0;
            if (DoubleSeparator) Special(SepId, 0);
            Text(second, n2, type, 1);
            Special(SepId, type);
        }
        return new EncodedText(ids, types, length) { SpecialTokensMask = special, WordIds = words, Offsets = offsets, SequenceIds = sequences };
    }

    /// <summary>
    /// HF tokenizers' <c>LongestFirst</c>: with room <paramref name="budget"/>, a pair keeps the shorter side whole if the
    /// longer one can absorb the cut, else both get half (the odd token to the longer side, to the pair on a tie).
    /// </summary>
    internal static (int First, int Second) TruncatedLengths(int first, int second, int budget, bool isPair)
    {
        if (first + second <= budget) return (first, second);
        if (!isPair) return (budget, 0);
        int n1 = first, n2 = second;
        bool swap = n1 > n2;
        if (swap) (n1, n2) = (n2, n1);
        n2 = n1 > budget ? n1 : Math.Max(n1, budget - n1);
        if (n1 + n2 > budget)
        {
            n1 = budget / 2;
            n2 = n1 + budget % 2;
        }
        return swap ? (n2, n1) : (n1, n2);
    }
}
