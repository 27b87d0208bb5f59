using SharpTune.Models;

namespace SharpTune.Training;

/// <summary>Turns a dataset's targets and the model's probabilities into the metrics of its task.</summary>
public static class TaskMetrics
{
    /// <summary>
    /// Single-label: accuracy, macro-F1, MCC, per-class scores, confusion matrix (prediction = arg-max).
    /// Multi-label: micro/macro-F1 at probability 0.5. Regression: Pearson, Spearman, MSE.
    /// </summary>
    public static EvaluationMetrics Compute(TaskDataset data, float[][] probabilities)
    {
        switch (data.Problem)
        {
            case ProblemType.SingleLabelClassification:
            {
                int[] gold = data.Labels!.Select(l => (int)l).ToArray();
                int width = data.NumLabels;
                float[] flat = probabilities.SelectMany(p => p).ToArray();
                int[] predicted = Metrics.ArgMax(flat, width);
                return Metrics.Classification(gold, predicted, data.LabelNames);
            }
            case ProblemType.MultiLabelClassification:
                return Metrics.MultiLabel(data.Targets!.SelectMany(t => t).ToArray(), probabilities.SelectMany(p => p).ToArray(), data.LabelNames);
            case ProblemType.Regression:
                return Metrics.Regression(data.Targets!.Select(t => t[0]).ToArray(), probabilities.Select(p => p[0]).ToArray());
            default:
                throw new ArgumentOutOfRangeException(nameof(data));
        }
    }

    /// <summary>True when <paramref name="candidate"/> beats <paramref name="best"/> on <paramref name="metric"/>.</summary>
    public static bool IsBetter(string metric, double candidate, double best) =>
        MetricNames.HigherIsBetter(metric) ? candidate > best : candidate < best;
}
