using SharpTune.Tokenization;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>A padded batch: ids, token types and mask [batch, longest], targets, and which examples it holds.</summary>
public sealed record Batch(Tensor InputIds, Tensor TokenTypeIds, Tensor AttentionMask, Tensor Targets, int[] Indices) : IDisposable
{
    /// <summary>Examples in the batch.</summary>
    public int Size => Indices.Length;

    /// <inheritdoc />
    public void Dispose()
    {
        InputIds.Dispose();
        TokenTypeIds.Dispose();
        AttentionMask.Dispose();
        Targets.Dispose();
    }
}

/// <summary>
/// Makes batches padded to their longest member. With bucketing, examples of similar length go together:
/// each epoch the examples are shuffled, cut into chunks of <see cref="BucketBatches"/> batches, each chunk
/// sorted by length and cut into batches, and the batches shuffled; little compute goes to padding.
/// </summary>
public sealed class Batcher(TaskDataset data, int batchSize, bool bucketing = true, int padTokenId = 0)
{
    /// <summary>Batches per length bucket.</summary>
    public const int BucketBatches = 50;

    /// <summary>The example order of one epoch, as batches of indices (deterministic for a seed and epoch).</summary>
    public IReadOnlyList<int[]> Plan(int seed, int epoch, bool shuffle = true)
    {
        int[] order = Enumerable.Range(0, data.Count).ToArray();
        var random = new Random(unchecked(seed * 1_000_003 + epoch)); // not HashCode.Combine: that is randomised per process
        if (shuffle) random.Shuffle(order);
        var batches = new List<int[]>();
        int chunk = bucketing ? batchSize * BucketBatches : batchSize;
        for (int start = 0; start < order.Length; start += chunk)
        {
            var part = order.Skip(start).Take(chunk);
            if (bucketing) part = part.OrderBy(data.Length); // stable: ties keep their shuffled order
            int[] sorted = part.ToArray();
            for (int b = 0; b < sorted.Length; b += batchSize)
                batches.Add(sorted[b..Math.Min(sorted.Length, b + batchSize)]);
        }
        if (shuffle && bucketing) random.Shuffle(CollectionsMarshalSpan(batches));
        return batches;
    }

    /// <summary>Inference order: sorted by length (longest first), not shuffled; fast and low on padding.</summary>
    public IReadOnlyList<int[]> SortedPlan()
    {
        int[] sorted = Enumerable.Range(0, data.Count).OrderByDescending(data.Length).ToArray();
        var batches = new List<int[]>();
        for (int b = 0; b < sorted.Length; b += batchSize) batches.Add(sorted[b..Math.Min(sorted.Length, b + batchSize)]);
        return batches;
    }

    /// <summary>Padded tokens over real tokens for a plan (1.0 = no padding).</summary>
    public double PaddingRatio(IReadOnlyList<int[]> plan)
    {
        long real = 0, padded = 0;
        foreach (int[] batch in plan)
        {
            int longest = batch.Max(data.Length);
            padded += (long)longest * batch.Length;
            real += batch.Sum(data.Length);
        }
        return real == 0 ? 1 : (double)padded / real;
    }

    /// <summary>Builds the tensors of one batch on the CPU.</summary>
    public Batch Make(int[] indices)
    {
        var padded = EncodedBatch.Pad(indices.Select(i => (data.InputIds[i], data.TokenTypeIds[i], data.Length(i))).ToList(), padTokenId);
        Tensor targets = data.IsLabelled ? data.Task.Targets(data, indices) : empty(0);
        var (ids, types, mask) = padded.ToTensors();
        return new Batch(ids, types, mask, targets, indices);
    }

    private static Span<int[]> CollectionsMarshalSpan(List<int[]> list) => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list);
}
