using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Tokenization;

/// <summary>
/// A normalized text with, for every UTF-16 unit, the span [Start, End) of the original text it came from, so
/// that token offsets can be mapped back through the normalization (Hugging Face's NormalizedString alignments,
/// kept per UTF-16 unit instead of per UTF-8 byte). Both units of a surrogate pair carry the same span.
/// </summary>
internal sealed class AlignedText
{
    public readonly string Text;
    public readonly int[] Starts;
    public readonly int[] Ends;

    public AlignedText(string text, int[] starts, int[] ends)
    {
        Text = text;
        Starts = starts;
        Ends = ends;
    }

    /// <summary>The original text, each unit aligned to itself.</summary>
    public static AlignedText Original(string text)
    {
        var starts = new int[text.Length];
        var ends = new int[text.Length];
        for (int i = 0; i < text.Length; i++)
        {
            // A surrogate pair is one character: both halves point at the whole pair.
            bool pairStart = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            bool pairEnd = char.IsLowSurrogate(text[i]) && i > 0 && char.IsHighSurrogate(text[i - 1]);
            starts[i] = pairEnd ? i - 1 : i;
            ends[i] = pairStart ? i + 2 : i + 1;
        }
        return new AlignedText(text, starts, ends);
    }

    /// <summary>Length in UTF-16 units of the code point at <paramref name="i"/>.</summary>
    public static int CodePointLength(string s, int i) =>
        char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;
}

/// <summary>Builds an <see cref="AlignedText"/> one piece at a time.</summary>
internal sealed class AlignedTextBuilder(int capacity)
{
    private readonly StringBuilder _text = new(capacity);
    private readonly List<int> _starts = new(capacity);
    private readonly List<int> _ends = new(capacity);

    public int Length => _text.Length;

    /// <summary>Copies units [from, to) of <paramref name="source"/> unchanged.</summary>
    public void Copy(AlignedText source, int from, int to)
    {
        _text.Append(source.Text, from, to - from);
        for (int i = from; i < to; i++)
        {
            _starts.Add(source.Starts[i]);
            _ends.Add(source.Ends[i]);
        }
    }

    /// <summary>Appends <paramref name="text"/> with every unit aligned to [start, end).</summary>
    public void Append(string text, int start, int end)
    {
        _text.Append(text);
        for (int i = 0; i < text.Length; i++)
        {
            _starts.Add(start);
            _ends.Add(end);
        }
    }

    /// <summary>
    /// Appends <paramref name="output"/> as the replacement of units [from, to) of <paramref name="source"/>.
    /// Hugging Face's rule: the k-th output character takes the span of the k-th replaced character; extra output
    /// characters share the span of the last replaced one (ﬁ → f, i both point at ﬁ). Where fewer characters come
    /// out than went in, HF leaves the dropped ones unaligned; here the last output character also covers them, so
    /// that offsets stay contiguous (a token ending in é from e + U+0301 ends after the combining mark).
    /// </summary>
    public void Replace(AlignedText source, int from, int to, string output)
    {
        if (output.Length == 0) return;
        Span<(int Start, int End)> spans = stackalloc (int, int)[Math.Min(to - from, 64)];
        int n = 0;
        (int Start, int End) overflow = (int.MaxValue, int.MinValue);
        for (int i = from; i < to; i += AlignedText.CodePointLength(source.Text, i))
        {
            var span = (source.Starts[i], source.Ends[i]);
            if (n < spans.Length) spans[n++] = span;
            else overflow = (Math.Min(overflow.Start, span.Item1), Math.Max(overflow.End, span.Item2));
        }
        int outCount = 0;
        for (int j = 0; j < output.Length; j += AlignedText.CodePointLength(output, j)) outCount++;
        int k = 0;
        for (int j = 0; j < output.Length; k++)
        {
            int length = AlignedText.CodePointLength(output, j);
            (int Start, int End) span;
            if (n == 0) span = overflow;
            else if (k < outCount - 1 || outCount > n) span = spans[Math.Min(k, n - 1)];
            else
            {
                // The last output character: it also covers any replaced characters left over.
                span = spans[Math.Min(k, n - 1)];
                for (int r = k + 1; r < n; r++) span = (Math.Min(span.Start, spans[r].Start), Math.Max(span.End, spans[r].End));
                if (overflow.Start != int.MaxValue) span = (Math.Min(span.Start, overflow.Start), Math.Max(span.End, overflow.End));
            }
            Append(output.Substring(j, length), span.Start, span.End);
            j += length;
        }
    }

    public AlignedText Build() => new(_text.ToString(), [.. _starts], [.. _ends]);
}

/// <summary>One normalizer of a SentencePiece pipeline (Hugging Face tokenizer.json normalizer types).</summary>
internal abstract class NormalizerStep
{
    public abstract AlignedText Apply(AlignedText text);

    /// <summary>
    /// HF's <c>Precompiled</c>: per extended grapheme cluster, the charsmap replacement of the whole cluster when it
    /// is shorter than 6 UTF-8 bytes and has one; otherwise each code point's replacement, or the code point itself.
    /// </summary>
    public sealed class Precompiled(PrecompiledCharsMap map) : NormalizerStep
    {
        public override AlignedText Apply(AlignedText text)
        {
            string s = text.Text;
            var builder = new AlignedTextBuilder(s.Length + 8);
            Span<byte> utf8 = stackalloc byte[8];
            for (int g = 0; g < s.Length;)
            {
                int graphemeLength = StringInfo.GetNextTextElementLength(s.AsSpan(g));
                var grapheme = s.AsSpan(g, graphemeLength);
                if (Encoding.UTF8.GetByteCount(grapheme) < 6)
                {
                    int count = Encoding.UTF8.GetBytes(grapheme, utf8);
                    string? replaced = map.Transform(utf8[..count]);
                    if (replaced is not null)
                    {
                        builder.Replace(text, g, g + graphemeLength, replaced);
                        g += graphemeLength;
                        continue;
                    }
                }
                for (int i = g; i < g + graphemeLength;)
                {
                    int length = AlignedText.CodePointLength(s, i);
                    int count = Encoding.UTF8.GetBytes(s.AsSpan(i, length), utf8);
                    string? replaced = map.Transform(utf8[..count]);
                    if (replaced is null) builder.Copy(text, i, i + length);
                    else builder.Replace(text, i, i + length, replaced);
                    i += length;
                }
                g += graphemeLength;
            }
            return builder.Build();
        }
    }

    /// <summary>HF's <c>Strip</c>: removes leading and/or trailing Unicode whitespace.</summary>
    public sealed class Strip(bool left, bool right) : NormalizerStep
    {
        public override AlignedText Apply(AlignedText text)
        {
            int from = 0, to = text.Text.Length;
            if (left) while (from < to && char.IsWhiteSpace(text.Text[from])) from++;
            if (right) while (to > from && char.IsWhiteSpace(text.Text[to - 1])) to--;
            if (from == 0 && to == text.Text.Length) return text;
            var builder = new AlignedTextBuilder(to - from);
            builder.Copy(text, from, to);
            return builder.Build();
        }
    }

    /// <summary>HF's <c>Replace</c>: every match of a literal string or a regex becomes <c>content</c>.</summary>
    public sealed class Replace(Regex pattern, string content) : NormalizerStep
    {
        public override AlignedText Apply(AlignedText text)
        {
            var builder = new AlignedTextBuilder(text.Text.Length);
            int copied = 0;
            for (var match = pattern.Match(text.Text); match.Success; match = match.NextMatch())
            {
                if (match.Length == 0) continue;
                builder.Copy(text, copied, match.Index);
                builder.Replace(text, match.Index, match.Index + match.Length, content);
                copied = match.Index + match.Length;
            }
            if (copied == 0) return text;
            builder.Copy(text, copied, text.Text.Length);
            return builder.Build();
        }
    }

    /// <summary>HF's <c>Lowercase</c> (per code point, invariant culture).</summary>
    public sealed class Lowercase : NormalizerStep
    {
        public override AlignedText Apply(AlignedText text)
        {
            var builder = new AlignedTextBuilder(text.Text.Length);
            for (int i = 0; i < text.Text.Length;)
            {
                int length = AlignedText.CodePointLength(text.Text, i);
                string original = text.Text.Substring(i, length);
                string lower = original.ToLowerInvariant();
                if (lower == original) builder.Copy(text, i, i + length);
                else builder.Replace(text, i, i + length, lower);
                i += length;
            }
            return builder.Build();
        }
    }
}
