namespace SharpTune.Tokenization;

/// <summary>
/// One encoded input, <c>[CLS] a [SEP]</c> or <c>[CLS] a [SEP] b [SEP]</c>, as int64 ids ready for TorchSharp.
/// </summary>
/// <param name="InputIds">Token ids, special tokens included, after truncation.</param>
/// <param name="TokenTypeIds">0 for <c>[CLS]</c>, the first text and its <c>[SEP]</c>; 1 for the pair and its <c>[SEP]</c>.</param>
/// <param name="Length">Number of ids the input would have without truncation (special tokens included); useful for length bucketing.</param>
public sealed record EncodedText(long[] InputIds, long[] TokenTypeIds, int Length)
{
    /// <summary>Whether tokens were cut to fit the maximum length.</summary>
    public bool Truncated => Length > InputIds.Length;
}
