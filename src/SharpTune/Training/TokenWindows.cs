using SharpTune.Tokenization;

namespace SharpTune.Training;

/// <summary>
/// One window of a tagged sentence, ready for the model: its encoding (special tokens included), one label per
/// token (the word's tag on the first sub-token of each word this window owns, <see cref="TokenWindows.IgnoreIndex"/>
/// elsewhere, as Hugging Face aligns labels), and which words it owns.
/// </summary>
/// <param name="Encoding">The encoded window; <see cref="EncodedText.WordIds"/> are sentence word indexes.</param>
/// <param name="Labels">Per token: a tag id, or <see cref="TokenWindows.IgnoreIndex"/>.</param>
/// <param name="OwnedWords">The words [Start, End) whose tags this window predicts (each word has exactly one owner).</param>
public sealed record TokenWindow(EncodedText Encoding, long[] Labels, (int Start, int End) OwnedWords)
{
    /// <summary>True when token <paramref name="index"/> is the first sub-token of a word this window owns.</summary>
    public bool Scores(int index)
    {
        int word = Encoding.WordIds[index];
        return word >= OwnedWords.Start && word < OwnedWords.End && (index == 0 || Encoding.WordIds[index - 1] != word);
    }
}

/// <summary>
/// Words → sub-word tokens for token classification: each word is tokenized on its own (HF's
/// <c>is_split_into_words</c>), its first sub-token carries its tag and the others are ignored in the loss; a sentence
/// longer than the model's window is split into overlapping windows (never silently truncated), and predictions are
/// stitched back to one tag per word.
/// </summary>
public static class TokenWindows
{
    /// <summary>The label of tokens that do not count in the loss (special tokens, continuation sub-tokens), as PyTorch's cross-entropy default.</summary>
    public const long IgnoreIndex = -100;

    /// <summary>
    /// Splits <paramref name="words"/> into windows of at most <paramref name="maxLength"/> tokens (special tokens
    /// included); consecutive windows share about <paramref name="stride"/> tokens of context, and each word is owned by
    /// the window where it sits farther from the edge. <paramref name="tags"/> (tag ids per word) may be null for
    /// prediction. A single word longer than a window keeps its first sub-tokens.
    /// </summary>
    /// <exception cref="ArgumentException">Tags and words differ in number, or the window leaves no room for tokens.</exception>
    public static IReadOnlyList<TokenWindow> Split(Tokenizer tokenizer, IReadOnlyList<string> words, IReadOnlyList<int>? tags, int maxLength, int stride)
    {
        if (tags is not null && tags.Count != words.Count)
            throw new ArgumentException($"{words.Count} words but {tags.Count} tags.", nameof(tags));
        int room = maxLength - tokenizer.Template.Added(false);
        if (room < 1) throw new ArgumentException($"maxLength {maxLength} leaves no room for tokens.", nameof(maxLength));
        if (stride < 0 || stride >= room) throw new ArgumentException($"stride must be in [0, {room}) for maxLength {maxLength}, got {stride}.", nameof(stride));
        if (words.Count == 0) return []; // nothing to tag: no window

        // Each word's pieces, on its own; a word longer than the room keeps its first pieces.
        var wordPieces = new List<Piece>[words.Count];
        for (int w = 0; w < words.Count; w++)
        {
            var single = tokenizer.EncodeWords([words[w]], int.MaxValue);
            wordPieces[w] = [];
            for (int i = 0; i < single.InputIds.Length && wordPieces[w].Count < room; i++)
                if (single.SpecialTokensMask[i] == 0)
                    wordPieces[w].Add(new Piece((int)single.InputIds[i], single.Offsets[i].Start, single.Offsets[i].End, w));
        }

        // Windows of whole words: [start, end) with at most `room` pieces; the next starts where the last `stride`
        // pieces of this one begin (at least one word further on).
        var spans = new List<(int Start, int End)>();
        int start = 0;
        while (true)
        {
            int end = start, used = 0;
            while (end < words.Count && used + wordPieces[end].Count <= room) used += wordPieces[end++].Count;
            if (end == start) used += wordPieces[end++].Count; // cannot happen (pieces ≤ room), kept for safety
            spans.Add((start, end));
            if (end >= words.Count) break;
            int next = end, overlap = 0;
            while (next > start + 1 && overlap + wordPieces[next - 1].Count <= stride) overlap += wordPieces[--next].Count;
            start = next;
        }

        var windows = new List<TokenWindow>(spans.Count);
        for (int k = 0; k < spans.Count; k++)
        {
            // Ownership changes hands in the middle of the shared words, so every word is predicted with context on both sides.
            int ownStart = k == 0 ? 0 : (spans[k].Start + spans[k - 1].End + 1) / 2;
            int ownEnd = k == spans.Count - 1 ? words.Count : (spans[k + 1].Start + spans[k].End + 1) / 2;
            var pieces = new List<Piece>();
            for (int w = spans[k].Start; w < spans[k].End; w++) pieces.AddRange(wordPieces[w]);
            EncodedText encoding = tokenizer.Template.Apply(pieces, null, maxLength);
            var window = new TokenWindow(encoding, new long[encoding.InputIds.Length], (ownStart, ownEnd));
            for (int i = 0; i < window.Labels.Length; i++)
                window.Labels[i] = tags is not null && window.Scores(i) ? tags[encoding.WordIds[i]] : IgnoreIndex;
            windows.Add(window);
        }
        return windows;
    }

    /// <summary>
    /// One tag id per word from the windows' per-token scores (<paramref name="scores"/>[window][token][tag]), and that
    /// tag's score (its probability, for probabilities): each word takes the arg-max of its first sub-token in the window
    /// that owns it.
    /// </summary>
    public static (int[] Tags, float[] Scores) Stitch(IReadOnlyList<TokenWindow> windows, IReadOnlyList<float[][]> scores, int wordCount)
    {
        var tags = Enumerable.Repeat(-1, wordCount).ToArray();
        var chosen = new float[wordCount];
        for (int k = 0; k < windows.Count; k++)
            for (int i = 0; i < windows[k].Encoding.InputIds.Length; i++)
                if (windows[k].Scores(i))
                {
                    float[] row = scores[k][i];
                    int word = windows[k].Encoding.WordIds[i];
                    tags[word] = Metrics.ArgMax(row);
                    chosen[word] = row[tags[word]];
                }
        int missing = Array.IndexOf(tags, -1);
        if (missing >= 0) throw new SharpTuneException($"Word {missing} of {wordCount} has no prediction; its window lost it.");
        return (tags, chosen);
    }
}
