namespace SharpTune.Training;

/// <summary>
/// Names of the metrics in <see cref="EvaluationMetrics.ToDictionary"/> (and <c>metrics.jsonl</c>), usable
/// with <see cref="EvaluationMetrics.Get"/> to pick the early-stopping metric.
/// </summary>
public static class MetricNames
{
    /// <summary>Fraction of texts whose predicted class is the gold class (single-label). Higher is better.</summary>
    public const string Accuracy = "accuracy";
    /// <summary>Unweighted mean of per-class (per-label) F1. Higher is better.</summary>
    public const string MacroF1 = "macro_f1";
    /// <summary>Matthews correlation coefficient, multi-class R_K (single-label). Higher is better; 0 = chance.</summary>
    public const string Mcc = "mcc";
    /// <summary>Mean loss over the evaluation set, when the trainer sets it. Lower is better.</summary>
    public const string Loss = "loss";
    /// <summary>Pearson correlation (regression). Higher is better.</summary>
    public const string Pearson = "pearson";
    /// <summary>Spearman rank correlation, ties given average ranks (regression). Higher is better.</summary>
    public const string Spearman = "spearman";
    /// <summary>Mean squared error (regression). Lower is better.</summary>
    public const string Mse = "mse";
    /// <summary>F1 over all (text, label) decisions pooled (multi-label). Higher is better.</summary>
    public const string MicroF1 = "micro_f1";
    /// <summary>Fraction of texts whose predicted label set equals the gold set exactly (multi-label). Higher is better.</summary>
    public const string SubsetAccuracy = "subset_accuracy";
    /// <summary>Fraction of words whose predicted tag is the gold tag (token classification). Higher is better.</summary>
    public const string TokenAccuracy = "token_accuracy";
    /// <summary>Entity-level F1, seqeval's default (micro over entity types; token classification with B-/I- tags). Higher is better.</summary>
    public const string EntityF1 = "entity_f1";
    /// <summary>Entity-level precision (seqeval, micro). Higher is better.</summary>
    public const string EntityPrecision = "entity_precision";
    /// <summary>Entity-level recall (seqeval, micro). Higher is better.</summary>
    public const string EntityRecall = "entity_recall";
    /// <summary>Prefix of per-class F1 entries: <c>f1/&lt;label&gt;</c>. Higher is better.</summary>
    public const string ClassF1Prefix = "f1/";

    // The one registry: every metric name, its direction, and whether comparison tables show it — in the tables' column order.
    private static readonly (string Name, bool HigherIsBetter, bool Headline)[] Registry =
    [
        (Accuracy, true, true), (TokenAccuracy, true, true), (EntityF1, true, true), (MacroF1, true, true), (MicroF1, true, true),
        (Pearson, true, true), (Spearman, true, true), (Mse, false, true),
        (Mcc, true, false), (SubsetAccuracy, true, false), (EntityPrecision, true, false), (EntityRecall, true, false),
        (Loss, false, true),
    ];

    private static readonly Dictionary<string, bool> Direction = Registry.ToDictionary(m => m.Name, m => m.HigherIsBetter, StringComparer.Ordinal);

    /// <summary>Every metric name (per-class <c>f1/&lt;label&gt;</c> aside).</summary>
    public static IEnumerable<string> All => Registry.Select(m => m.Name);

    /// <summary>
    /// The metrics a comparison's tables show when its runs have them, in column order: the accuracies, entity F1,
    /// macro/micro F1, the regression scores, and loss last.
    /// </summary>
    public static IReadOnlyList<string> Headline { get; } = Registry.Where(m => m.Headline).Select(m => m.Name).ToArray();

    /// <summary>Whether a larger value of the metric is better (true for all but <c>loss</c> and <c>mse</c>).</summary>
    /// <exception cref="SharpTuneException">The name is not a known metric.</exception>
    public static bool HigherIsBetter(string name)
    {
        if (Direction.TryGetValue(name, out bool higher)) return higher;
        if (name.StartsWith(ClassF1Prefix, StringComparison.Ordinal)) return true;
        throw new SharpTuneException($"Unknown metric '{name}'; known: {string.Join(", ", All)}, {ClassF1Prefix}<label>.");
    }

    /// <summary>True when <paramref name="candidate"/> beats <paramref name="best"/> on <paramref name="metric"/>.</summary>
    public static bool IsBetter(string metric, double candidate, double best) => HigherIsBetter(metric) ? candidate > best : candidate < best;
}

/// <summary>Precision, recall and F1 of one class (or one label of a multi-label task).</summary>
/// <param name="Label">The class name.</param>
/// <param name="Precision">TP / (TP + FP); 0 when the class is never predicted.</param>
/// <param name="Recall">TP / (TP + FN); 0 when the class never occurs.</param>
/// <param name="F1">Harmonic mean of precision and recall; 0 when both are 0.</param>
/// <param name="Support">How many gold instances of the class.</param>
public sealed record ClassScore(string Label, double Precision, double Recall, double F1, int Support);

/// <summary>
/// Metrics of one evaluation. Every value is finite: undefined ratios (no predictions, constant
/// inputs, empty set) are reported as 0, never NaN.
/// </summary>
public abstract record EvaluationMetrics
{
    /// <summary>Mean evaluation loss, set by the trainer (<c>metrics with { Loss = … }</c>); null when not computed.</summary>
    public double? Loss { get; init; }

    /// <summary>Number of evaluated texts.</summary>
    public abstract int Count { get; }

    /// <summary>The metrics by name (<see cref="MetricNames"/>), plus <c>loss</c> when set; for <c>metrics.jsonl</c>.</summary>
    public Dictionary<string, double> ToDictionary()
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        if (Loss is double loss) values[MetricNames.Loss] = loss;
        foreach ((string name, double value) in Values()) values[name] = value;
        return values;
    }

    /// <summary>One metric by name, e.g. the early-stopping metric.</summary>
    /// <exception cref="SharpTuneException">This task does not compute the metric (the message lists those it does).</exception>
    public double Get(string name)
    {
        Dictionary<string, double> values = ToDictionary();
        return values.TryGetValue(name, out double value)
            ? value
            : throw new SharpTuneException($"Metric '{name}' is not available here; available: {string.Join(", ", values.Keys)}.");
    }

    /// <summary>The task's metrics in a stable order.</summary>
    protected abstract IEnumerable<(string Name, double Value)> Values();
}

/// <summary>Single-label classification metrics.</summary>
/// <param name="Count">Number of evaluated texts.</param>
/// <param name="Accuracy">Fraction predicted correctly.</param>
/// <param name="MacroF1">Mean F1 over the classes that occur in the gold labels or the predictions (as scikit-learn's default).</param>
/// <param name="Mcc">Matthews correlation coefficient (Gorodkin's R_K; equals binary MCC for two classes).</param>
/// <param name="PerClass">One score per class, in label-id order.</param>
/// <param name="ConfusionMatrix">[gold id][predicted id] counts.</param>
public sealed record ClassificationMetrics(int Count, double Accuracy, double MacroF1, double Mcc, IReadOnlyList<ClassScore> PerClass, int[][] ConfusionMatrix)
    : EvaluationMetrics
{
    /// <inheritdoc />
    public override int Count { get; } = Count;

    /// <inheritdoc />
    protected override IEnumerable<(string Name, double Value)> Values() =>
        new[] { (MetricNames.Accuracy, Accuracy), (MetricNames.MacroF1, MacroF1), (MetricNames.Mcc, Mcc) }
            .Concat(PerClass.Select(c => (MetricNames.ClassF1Prefix + c.Label, c.F1)));
}

/// <summary>Regression metrics.</summary>
/// <param name="Count">Number of evaluated texts.</param>
/// <param name="Pearson">Pearson correlation; 0 when either side is constant.</param>
/// <param name="Spearman">Spearman rank correlation with average ranks for ties; 0 when either side is constant.</param>
/// <param name="Mse">Mean squared error.</param>
public sealed record RegressionMetrics(int Count, double Pearson, double Spearman, double Mse) : EvaluationMetrics
{
    /// <inheritdoc />
    public override int Count { get; } = Count;

    /// <inheritdoc />
    protected override IEnumerable<(string Name, double Value)> Values() =>
        [(MetricNames.Pearson, Pearson), (MetricNames.Spearman, Spearman), (MetricNames.Mse, Mse)];
}

/// <summary>Multi-label classification metrics.</summary>
/// <param name="Count">Number of evaluated texts.</param>
/// <param name="MicroF1">F1 of all (text, label) decisions pooled.</param>
/// <param name="MacroF1">Mean F1 over all labels (a label absent from gold and predictions scores 0, as in scikit-learn).</param>
/// <param name="SubsetAccuracy">Fraction of texts whose predicted label set is exactly the gold set.</param>
/// <param name="PerClass">One score per label, in label-id order.</param>
public sealed record MultiLabelMetrics(int Count, double MicroF1, double MacroF1, double SubsetAccuracy, IReadOnlyList<ClassScore> PerClass)
    : EvaluationMetrics
{
    /// <inheritdoc />
    public override int Count { get; } = Count;

    /// <inheritdoc />
    protected override IEnumerable<(string Name, double Value)> Values() =>
        new[] { (MetricNames.MicroF1, MicroF1), (MetricNames.MacroF1, MacroF1), (MetricNames.SubsetAccuracy, SubsetAccuracy) }
            .Concat(PerClass.Select(c => (MetricNames.ClassF1Prefix + c.Label, c.F1)));
}

/// <summary>Computes evaluation metrics from gold labels and predictions (plain C#, no tensors).</summary>
public static class Metrics
{
    /// <summary>Single-label metrics from gold and predicted class ids.</summary>
    /// <param name="gold">Gold class id per text.</param>
    /// <param name="predicted">Predicted class id per text (e.g. <see cref="ArgMax"/> of each text's logits).</param>
    /// <param name="labels">Class names indexed by id (e.g. <c>LabelSet.Names</c>).</param>
    /// <exception cref="ArgumentException">Lengths differ or an id is outside 0..labels.Count-1.</exception>
    public static ClassificationMetrics Classification(ReadOnlySpan<int> gold, ReadOnlySpan<int> predicted, IReadOnlyList<string> labels)
    {
        if (gold.Length != predicted.Length)
            throw new ArgumentException($"{gold.Length} gold labels but {predicted.Length} predictions.", nameof(predicted));
        int k = labels.Count;
        int[][] confusion = Enumerable.Range(0, k).Select(_ => new int[k]).ToArray();
        for (int i = 0; i < gold.Length; i++)
        {
            if ((uint)gold[i] >= (uint)k) throw new ArgumentException($"Gold id {gold[i]} at {i} is outside 0..{k - 1}.", nameof(gold));
            if ((uint)predicted[i] >= (uint)k) throw new ArgumentException($"Predicted id {predicted[i]} at {i} is outside 0..{k - 1}.", nameof(predicted));
            confusion[gold[i]][predicted[i]]++;
        }

        var goldTotals = new long[k];
        var predictedTotals = new long[k];
        long correct = 0;
        for (int g = 0; g < k; g++)
            for (int p = 0; p < k; p++)
            {
                goldTotals[g] += confusion[g][p];
                predictedTotals[p] += confusion[g][p];
                if (g == p) correct += confusion[g][p];
            }

        var perClass = new ClassScore[k];
        double f1Sum = 0;
        int present = 0;
        for (int c = 0; c < k; c++)
        {
            perClass[c] = Score(labels[c], confusion[c][c], predictedTotals[c], goldTotals[c]);
            if (goldTotals[c] + predictedTotals[c] > 0) { f1Sum += perClass[c].F1; present++; }
        }

        // Gorodkin (2004) R_K: (c·s − Σ p_k t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²)).
        double s = gold.Length, sumPt = 0, sumP2 = 0, sumT2 = 0;
        for (int c = 0; c < k; c++)
        {
            sumPt += (double)predictedTotals[c] * goldTotals[c];
            sumP2 += (double)predictedTotals[c] * predictedTotals[c];
            sumT2 += (double)goldTotals[c] * goldTotals[c];
        }
        double denominator = Math.Sqrt((s * s - sumP2) * (s * s - sumT2));
        double mcc = denominator > 0 ? (correct * s - sumPt) / denominator : 0;

        return new ClassificationMetrics(gold.Length, Ratio(correct, gold.Length), present > 0 ? f1Sum / present : 0, mcc, perClass, confusion);
    }

    /// <summary>Regression metrics from gold and predicted values.</summary>
    /// <exception cref="ArgumentException">Lengths differ.</exception>
    public static RegressionMetrics Regression(ReadOnlySpan<float> gold, ReadOnlySpan<float> predicted)
    {
        if (gold.Length != predicted.Length)
            throw new ArgumentException($"{gold.Length} gold values but {predicted.Length} predictions.", nameof(predicted));
        double[] x = ToDoubles(gold), y = ToDoubles(predicted);
        double squared = 0;
        for (int i = 0; i < x.Length; i++) squared += (y[i] - x[i]) * (y[i] - x[i]);
        return new RegressionMetrics(x.Length, Pearson(x, y), Pearson(Ranks(x), Ranks(y)), x.Length > 0 ? squared / x.Length : 0);
    }

    /// <summary>
    /// Multi-label metrics. Both spans are row-major [texts × labels]: <paramref name="gold"/> holds 0/1
    /// targets, <paramref name="scores"/> sigmoid probabilities or 0/1 predictions; a label is predicted
    /// when its score is ≥ <paramref name="threshold"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Lengths differ or are not a multiple of the label count.</exception>
    public static MultiLabelMetrics MultiLabel(ReadOnlySpan<float> gold, ReadOnlySpan<float> scores, IReadOnlyList<string> labels, float threshold = 0.5f)
    {
        int k = labels.Count;
        if (gold.Length != scores.Length)
            throw new ArgumentException($"{gold.Length} gold values but {scores.Length} scores.", nameof(scores));
        if (k == 0 || gold.Length % k != 0)
            throw new ArgumentException($"{gold.Length} values is not a whole number of rows of {k} labels.", nameof(gold));
        int n = gold.Length / k;
        var truePositives = new long[k];
        var predictedTotals = new long[k];
        var goldTotals = new long[k];
        int exact = 0;
        for (int row = 0; row < n; row++)
        {
            bool same = true;
            for (int c = 0; c < k; c++)
            {
                bool isGold = gold[row * k + c] >= 0.5f, isPredicted = scores[row * k + c] >= threshold;
                if (isGold) goldTotals[c]++;
                if (isPredicted) predictedTotals[c]++;
                if (isGold && isPredicted) truePositives[c]++;
                same &= isGold == isPredicted;
            }
            if (same) exact++;
        }
        var perClass = new ClassScore[k];
        for (int c = 0; c < k; c++) perClass[c] = Score(labels[c], truePositives[c], predictedTotals[c], goldTotals[c]);
        ClassScore micro = Score("", truePositives.Sum(), predictedTotals.Sum(), goldTotals.Sum());
        return new MultiLabelMetrics(n, micro.F1, perClass.Average(c => c.F1), Ratio(exact, n), perClass);
    }

    /// <summary>The index of the largest value (the first on ties): the class chosen from one example's (or token's) logits or probabilities.</summary>
    /// <exception cref="ArgumentException">There are no values.</exception>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) throw new ArgumentException("No values to choose from.", nameof(values));
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    /// <summary>Pearson correlation; 0 when fewer than two values or either side is constant.</summary>
    public static double Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count) throw new ArgumentException($"{x.Count} vs {y.Count} values.", nameof(y));
        int n = x.Count;
        if (n < 2) return 0;
        double meanX = x.Average(), meanY = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++)
        {
            double dx = x[i] - meanX, dy = y[i] - meanY;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }
        return sxx > 0 && syy > 0 ? Math.Clamp(sxy / Math.Sqrt(sxx * syy), -1, 1) : 0;
    }

    /// <summary>1-based ranks; tied values share the average of their ranks (e.g. 1, 2.5, 2.5, 4).</summary>
    public static double[] Ranks(IReadOnlyList<double> values)
    {
        int[] order = Enumerable.Range(0, values.Count).OrderBy(i => values[i]).ToArray();
        var ranks = new double[values.Count];
        for (int start = 0; start < order.Length; )
        {
            int end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]]) end++;
            double average = (start + end) / 2.0 + 1;
            for (int i = start; i <= end; i++) ranks[order[i]] = average;
            start = end + 1;
        }
        return ranks;
    }

    private static ClassScore Score(string label, long truePositives, long predicted, long support)
    {
        double precision = Ratio(truePositives, predicted), recall = Ratio(truePositives, support);
        double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
        return new ClassScore(label, precision, recall, f1, checked((int)support));
    }

    private static double Ratio(long numerator, long denominator) => denominator > 0 ? (double)numerator / denominator : 0;

    private static double[] ToDoubles(ReadOnlySpan<float> values)
    {
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = values[i];
        return result;
    }
}
