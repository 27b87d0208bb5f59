using TorchSharp;
using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>An evaluation: the mean loss, each example's per-class probabilities (in dataset order; per-token tasks: [tokens × labels] flattened) and the metrics.</summary>
public sealed record EvaluationOutput(double Loss, float[][] Probabilities, EvaluationMetrics? Details)
{
    /// <summary>The metrics by name (loss included), as written to metrics.jsonl.</summary>
    public IReadOnlyDictionary<string, double> Metrics { get; } = Details?.ToDictionary() ?? new Dictionary<string, double> { [MetricNames.Loss] = Loss };
}

/// <summary>Inference over a dataset: eval mode, no gradient, batches sorted by length.</summary>
public static class Evaluator
{
    /// <summary>Per-class probabilities for every example of <paramref name="data"/>, in dataset order.</summary>
    public static float[][] Predict(SequenceClassifier model, TaskDataset data, int batchSize, Device device, Precision precision = Precision.Fp32,
        Export.OnnxRuntimeModel? onnx = null) =>
        Run(model, data, batchSize, device, withMetrics: false, precision, onnx: onnx).Probabilities;

    /// <summary>Runs the model over <paramref name="data"/> and computes loss and metrics; <paramref name="precision"/>: see <see cref="Autocast"/>.</summary>
    /// <remarks>
    /// TorchSharp computes on <paramref name="device"/>: a model elsewhere (loaded on the CPU, evaluated on <c>cuda</c>) is
    /// moved there first and stays there.
    /// 
    /// With <paramref name="features"/> (the frozen backbone's cached output for <paramref name="data"/>), only the head
    /// runs; with <paramref name="onnx"/> (the model's export), ONNX Runtime computes the logits instead of TorchSharp.
    /// </remarks>
    public static EvaluationOutput Run(SequenceClassifier model, TaskDataset data, int batchSize, Device device, bool withMetrics = true,
        Precision precision = Precision.Fp32, FeatureCache? features = null, Export.OnnxRuntimeModel? onnx = null)
    {
        Native.TorchRuntime.EnsureLoaded();
        if (onnx is not null && precision != Precision.Fp32)
            throw new SharpTuneException($"--precision {precision.ToString().ToLowerInvariant()} does not apply to --runtime onnx, which runs the float32 export; use --precision fp32.");
        if (onnx is null) Native.Devices.PlaceOn(model, device);
        bool wasTraining = model.training;
        model.eval();
        var probabilities = new float[data.Count][];
        double lossSum = 0;
        var batcher = new Batcher(data, batchSize, bucketing: true, model.Encoder.Config.PadTokenId);
        IReadOnlyList<int[]> plan = batcher.SortedPlan();
        using (var prefetcher = new BatchPrefetcher(batcher.Make, plan))
        using (no_grad())
        using (Autocast.Enter(precision))
            foreach (int[] indices in plan)
            {
                using var scope = NewDisposeScope();
                using Batch batch = prefetcher.Next();
                Tensor logits;
                if (features is not null)
                {
                    var (cached, mask) = features.Features(batch.Indices, device);
                    logits = model.Head.call(cached, mask);
                }
                else if (onnx is not null) logits = onnx.Run(batch.InputIds, batch.TokenTypeIds, batch.AttentionMask).to(device);
                else logits = model.call(batch.InputIds.to(device), batch.TokenTypeIds.to(device), batch.AttentionMask.to(device));
                if (withMetrics) lossSum += data.Task.Loss(logits, batch.Targets.to(device)).item<float>() * indices.Length;
                // [batch, labels], or [batch, longest, labels] per token: each example keeps its own tokens' rows.
                Tensor probs = data.Task.Probabilities(logits).cpu();
                long rowSize = probs[0].numel();
                int width = (int)probs.shape[^1];
                float[] flat = probs.data<float>().ToArray();
                for (int row = 0; row < indices.Length; row++)
                {
                    int count = probs.dim() == 3 ? data.Length(indices[row]) * width : width;
                    probabilities[indices[row]] = flat.AsSpan((int)(row * rowSize), count).ToArray();
                }
            }
        if (wasTraining) model.train();
        double loss = data.Count == 0 ? 0 : lossSum / data.Count;
        EvaluationMetrics? details = withMetrics ? data.Task.Evaluate(data, probabilities) with { Loss = loss } : null;
        return new EvaluationOutput(loss, probabilities, details);
    }
}
