namespace SharpTune.Tokenization;

/// <summary>
/// One encoded input with its special tokens (<c>[CLS] a [SEP] b [SEP]</c>, <c>&lt;s&gt; a &lt;/s&gt;&lt;/s&gt; b &lt;/s&gt;</c>), as int64
/// ids ready for TorchSharp, with what token classification needs to map tokens back to words and characters.
/// </summary>
/// <param name="InputIds">Token ids, special tokens included, after truncation.</param>
/// <param name="TokenTypeIds">Segment ids: 0 for the first text; 1 for the pair where the architecture uses segments (BERT, DeBERTa), 0 otherwise (RoBERTa).</param>
/// <param name="Length">Number of ids the input would have without truncation (special tokens included); useful for length bucketing.</param>
public sealed record EncodedText(long[] InputIds, long[] TokenTypeIds, int Length)
{
    /// <summary>Whether tokens were cut to fit the maximum length.</summary>
    public bool Truncated => Length > InputIds.Length;
    /// <summary>1 for special tokens added by the template, 0 for tokens of the texts.</summary>
    public byte[] SpecialTokensMask { get; init; } = [];
    /// <summary>Per token, the index of its word in its text (HF's <c>word_ids()</c>), -1 for special tokens.</summary>
    public int[] WordIds { get; init; } = [];
    /// <summary>Per token, its UTF-16 offsets [Start, End) in its own text (the first text or the pair); (0, 0) for special tokens.</summary>
    public (int Start, int End)[] Offsets { get; init; } = [];
    /// <summary>Per token, 0 for the first text, 1 for the pair, -1 for special tokens (HF's <c>sequence_ids()</c>).</summary>
    public int[] SequenceIds { get; init; } = [];
}
