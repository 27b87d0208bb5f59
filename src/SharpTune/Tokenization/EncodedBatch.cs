using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tokenization;

/// <summary>
/// A padded batch in row-major int64 arrays of <see cref="BatchSize"/> × <see cref="SequenceLength"/>,
/// the layout of HF's <c>input_ids</c>, <c>token_type_ids</c> and <c>attention_mask</c>.
/// </summary>
public sealed class EncodedBatch
{
    /// <summary>Creates a batch; every array holds <paramref name="batchSize"/> × <paramref name="sequenceLength"/> values.</summary>
    public EncodedBatch(long[] inputIds, long[] tokenTypeIds, long[] attentionMask, int[] lengths, int batchSize, int sequenceLength)
    {
        long expected = (long)batchSize * sequenceLength;
        if (inputIds.Length != expected || tokenTypeIds.Length != expected || attentionMask.Length != expected || lengths.Length != batchSize)
            throw new ArgumentException($"EncodedBatch: arrays must hold {batchSize} × {sequenceLength} values and {batchSize} lengths.");
        InputIds = inputIds;
        TokenTypeIds = tokenTypeIds;
        AttentionMask = attentionMask;
        Lengths = lengths;
        BatchSize = batchSize;
        SequenceLength = sequenceLength;
    }

    /// <summary>
    /// Pads encoded rows (ids, token types, untruncated length) into one batch: to the longest row, or to
    /// <paramref name="width"/> when given; the attention mask is 1 on real tokens. The one padding of SharpTune.
    /// </summary>
    public static EncodedBatch Pad(IReadOnlyList<(long[] Ids, long[] Types, int Length)> rows, long padId, int? width = null)
    {
        int columns = width ?? rows.Select(r => r.Ids.Length).DefaultIfEmpty(0).Max();
        var inputIds = new long[rows.Count * columns];
        var typeIds = new long[rows.Count * columns];
        var mask = new long[rows.Count * columns];
        inputIds.AsSpan().Fill(padId);
        for (int row = 0; row < rows.Count; row++)
        {
            var (ids, types, _) = rows[row];
            if (ids.Length > columns) throw new ArgumentException($"Row {row} has {ids.Length} ids, more than the batch width {columns}.");
            int offset = row * columns;
            ids.CopyTo(inputIds, offset);
            types.CopyTo(typeIds, offset);
            mask.AsSpan(offset, ids.Length).Fill(1);
        }
        return new EncodedBatch(inputIds, typeIds, mask, rows.Select(r => r.Length).ToArray(), rows.Count, columns);
    }

    /// <summary>Token ids, padded with the pad id.</summary>
    public long[] InputIds { get; }
    /// <summary>Segment ids (0 first text, 1 pair, 0 padding).</summary>
    public long[] TokenTypeIds { get; }
    /// <summary>1 for real tokens, 0 for padding.</summary>
    public long[] AttentionMask { get; }
    /// <summary>Per row, the number of ids before truncation (see <see cref="EncodedText.Length"/>).</summary>
    public int[] Lengths { get; }
    /// <summary>Number of rows.</summary>
    public int BatchSize { get; }
    /// <summary>Number of columns (the padded length).</summary>
    public int SequenceLength { get; }

    /// <summary>The three arrays as int64 tensors of shape [BatchSize, SequenceLength] on <paramref name="device"/> (CPU by default).</summary>
    public (Tensor InputIds, Tensor TokenTypeIds, Tensor AttentionMask) ToTensors(Device? device = null)
    {
        long[] shape = [BatchSize, SequenceLength];
        Tensor Make(long[] values)
        {
            Tensor cpu = tensor(values, shape, ScalarType.Int64);
            if (device is null || device.type == DeviceType.CPU) return cpu;
            using (cpu) return cpu.to(device);
        }
        return (Make(InputIds), Make(TokenTypeIds), Make(AttentionMask));
    }
}
