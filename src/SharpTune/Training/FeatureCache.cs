using System.Diagnostics;
using SharpTune.Heads;
using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>
/// The frozen backbone's output for every training example, computed once (eval mode, no gradient, batches
/// sorted by length) and kept: exactly what the head consumes, so each epoch costs only the head.
/// </summary>
public sealed class FeatureCache : IDisposable
{
    private readonly Tensor? vectors;          // [examples, hidden] for FirstToken, Pooled, MeanPooled
    private readonly Tensor[]? sequences;      // [length, hidden] per example for Sequence

    private FeatureCache(Tensor? vectors, Tensor[]? sequences)
    {
        this.vectors = vectors;
        this.sequences = sequences;
    }

    /// <summary>Encodes every example of <paramref name="data"/> once (the encoder in <paramref name="precision"/>, the features float32).</summary>
    public static FeatureCache Build(SequenceClassifier model, TaskDataset data, int batchSize, Device device, IProgress<TrainingEvent>? progress = null,
        Precision precision = Precision.Fp32)
    {
        var clock = Stopwatch.StartNew();
        bool sequence = model.Head.Input == HeadInput.Sequence;
        var perExample = new Tensor[data.Count];
        bool wasTraining = model.Encoder.training;
        model.Encoder.eval();
        var batcher = new Batcher(data, batchSize, bucketing: true, model.Encoder.Config.PadTokenId);
        using (no_grad())
        using (Autocast.Enter(precision))
            foreach (int[] indices in batcher.SortedPlan())
            {
                using var scope = NewDisposeScope();
                using Batch batch = batcher.Make(indices);
                Tensor mask = batch.AttentionMask.to(device);
                Tensor features = model.EncodeFeatures(batch.InputIds.to(device), batch.TokenTypeIds.to(device), mask)
                    .to_type(ScalarType.Float32);
                for (int row = 0; row < indices.Length; row++)
                {
                    Tensor one = features[row];
                    if (sequence) one = one.narrow(0, 0, data.Length(indices[row]));
                    perExample[indices[row]] = one.clone().MoveToOuterDisposeScope();
                }
            }
        if (wasTraining) model.Encoder.train();
        FeatureCache cache;
        if (sequence) cache = new FeatureCache(null, perExample);
        else
        {
            cache = new FeatureCache(stack(perExample), null);
            foreach (var t in perExample) t.Dispose();
        }
        progress?.Report(new FeaturesCachedEvent(data.Count, clock.Elapsed.TotalSeconds, "computed"));
        return cache;
    }

    /// <summary>
    /// The cached features of a batch on <paramref name="device"/>: [batch, hidden] with no mask, or for a
    /// sequence head [batch, longest, hidden] padded with zeros and its attention mask.
    /// </summary>
    public (Tensor Features, Tensor? AttentionMask) Features(int[] indices, Device device)
    {
        if (vectors is not null)
        {
            using var index = tensor(indices.Select(i => (long)i).ToArray());
            return (vectors.index_select(0, index).to(device), null);
        }
        var rows = indices.Select(i => sequences![i]).ToList();
        long longest = rows.Max(r => r.shape[0]);
        Tensor padded = stack(rows.Select(r => nn.functional.pad(r, [0, 0, 0, longest - r.shape[0]])).ToList()).to(device);
        Tensor mask = stack(rows.Select(r => cat([ones(r.shape[0], ScalarType.Int64), zeros(longest - r.shape[0], ScalarType.Int64)])).ToList()).to(device);
        return (padded, mask);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        vectors?.Dispose();
        if (sequences is not null) foreach (var t in sequences) t?.Dispose();
    }
}
