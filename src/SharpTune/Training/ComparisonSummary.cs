using System.Globalization;

namespace SharpTune.Training;

/// <summary>One strategy's runs in a comparison (one per seed) and their means.</summary>
/// <param name="Strategy">The strategy's name.</param>
/// <param name="Runs">Its finished runs, one per seed.</param>
public sealed record StrategySummary(string Strategy, IReadOnlyList<ComparisonRow> Runs)
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>The mean of a metric over the runs, or null when a run lacks it.</summary>
    public double? Mean(string metric) => Runs.Count > 0 && Runs.All(r => r.Metrics.ContainsKey(metric)) ? Runs.Average(r => r.Metrics[metric]) : null;

    /// <summary>The sample standard deviation (n − 1) of a metric over the runs; null with fewer than two runs.</summary>
    public double? Std(string metric) => Mean(metric) is { } mean && Runs.Count > 1
        ? Math.Sqrt(Runs.Sum(r => (r.Metrics[metric] - mean) * (r.Metrics[metric] - mean)) / (Runs.Count - 1)) : null;

    /// <summary>"0.9781 ± 0.0063" (with one run: "0.9781"), or "–" when the metric is missing.</summary>
    public string Format(string metric, string format = "F4") => Mean(metric) is not { } mean ? "–"
        : Std(metric) is { } std ? $"{mean.ToString(format, Invariant)} ± {std.ToString(format, Invariant)}" : mean.ToString(format, Invariant);

    /// <summary>The base learning rate (the same for every seed).</summary>
    public double LearningRate => Runs[0].LearningRate;
    /// <summary>Trainable parameters.</summary>
    public long TrainableParameters => Runs[0].TrainableParameters;
    /// <summary>Trainable share in percent.</summary>
    public double TrainablePercent => Runs[0].TrainablePercent;
    /// <summary>Mean train time in seconds.</summary>
    public double TrainSeconds => Runs.Average(r => r.TrainSeconds);
    /// <summary>Mean train time per pass over the training data: the strategy's cost, whatever the budget.</summary>
    public double SecondsPerEpoch => Runs.Average(r => r.SecondsPerEpoch);
    /// <summary>Mean passes over the training data.</summary>
    public double EpochsTrained => Runs.Average(r => r.EpochsTrained);
    /// <summary>Mean training examples per second.</summary>
    public double SamplesPerSecond => Runs.Average(r => r.SamplesPerSecond);
    /// <summary>Mean peak resident memory, or null where it was not measured.</summary>
    public long? PeakRssBytes => Runs.All(r => r.PeakRssBytes is not null) ? (long)Runs.Average(r => r.PeakRssBytes!.Value) : null;
    /// <summary>Whether every run's peak was measured for that run alone.</summary>
    public bool PeakRssPerRun => Runs.All(r => r.PeakRssPerRun);
    /// <summary>Runs whose freeze audit passed.</summary>
    public int AuditsPassed => Runs.Count(r => r.AuditPassed);
    /// <summary>Whether a run's frozen features came from an earlier run's disk cache (its time holds no encoding).</summary>
    public bool FeaturesFromDisk => Runs.Any(r => r.FeatureSource == "disk");
}

/// <summary>
/// The cheapest strategy whose mean is within <see cref="Threshold"/> of the best mean, and what it costs next to
/// <see cref="Reference"/> (full fine-tuning when it was run, else the best).
/// </summary>
/// <param name="Strategy">The recommended strategy.</param>
/// <param name="Best">The strategy with the best mean.</param>
/// <param name="Metric">The metric.</param>
/// <param name="Threshold">How far below the best mean still counts as "as good".</param>
/// <param name="ThresholdSource">Where <paramref name="Threshold"/> came from, in words.</param>
/// <param name="Reference">The strategy the costs are relative to.</param>
/// <param name="TimeRatio">Train time per epoch over the reference's.</param>
/// <param name="MemoryRatio">Peak resident memory over the reference's; null where not measured.</param>
/// <param name="Text">The recommendation as one line.</param>
public sealed record Recommendation(string Strategy, string Best, string Metric, double Threshold, string ThresholdSource, string Reference,
    double TimeRatio, double? MemoryRatio, string Text)
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>
    /// Picks among <paramref name="strategies"/>: the threshold is <paramref name="tolerance"/> when given, else the
    /// best's standard deviation over its seeds, else (one seed) the standard error of the best's figure over the eval
    /// examples from <paramref name="test"/>; "cheapest" is the lowest train time per epoch (then the lowest peak memory).
    /// </summary>
    public static Recommendation? Choose(IReadOnlyList<StrategySummary> strategies, int? bestIndex, string metric, double? tolerance, SignificanceTest? test)
    {
        if (bestIndex is not { } b) return null;
        StrategySummary best = strategies[b];
        double bestMean = best.Mean(metric)!.Value;
        var (threshold, source) = tolerance is { } t ? (t, "the tolerance given")
            : best.Std(metric) is { } std ? (std, $"one standard deviation of {best.Strategy} over {best.Runs.Count} seeds")
            : test is not null ? (test.BetterStandardError, $"the standard error of {best.Strategy}'s figure over the {test.Examples} eval {test.Unit}")
            : (0.0, "no noise estimate: one run and no tolerance");
        bool higher = MetricNames.HigherIsBetter(metric);
        StrategySummary chosen = strategies
            .Where(s => s.Mean(metric) is { } mean && (higher ? bestMean - mean : mean - bestMean) <= threshold + 1e-12)
            .OrderBy(s => s.SecondsPerEpoch).ThenBy(s => s.PeakRssBytes ?? long.MaxValue).First();
        StrategySummary reference = strategies.FirstOrDefault(s => s.Strategy == "full") ?? best;
        double timeRatio = chosen.SecondsPerEpoch / Math.Max(1e-12, reference.SecondsPerEpoch);
        double? memoryRatio = chosen.PeakRssBytes is { } m && reference.PeakRssBytes is { } r && r > 0 ? (double)m / r : null;

        string text = $"Recommendation: {chosen.Strategy} — {metric} {chosen.Format(metric)}";
        text += chosen == best
            ? (strategies.Count > 1 ? string.Create(Invariant, $", the best mean; nothing cheaper is within {threshold:0.####} ({source})") : "")
            : string.Create(Invariant, $", within {threshold:0.####} ({source}) of the best, {best.Strategy} ({best.Format(metric)})");
        text += chosen == reference ? "."
            : $"; it takes {Ratio(timeRatio)} the time per epoch of {reference.Strategy}" +
              (memoryRatio is { } mr ? $" and {Ratio(mr)} its peak memory." : ".");
        return new Recommendation(chosen.Strategy, best.Strategy, metric, threshold, source, reference.Strategy, timeRatio, memoryRatio, text);
    }

    /// <summary>A ratio with two significant digits: 0.0042×, 0.52×, 1.3×.</summary>
    public static string Ratio(double ratio) => ratio.ToString(ratio < 10 ? "G2" : "F0", Invariant) + "×";
}

/// <summary>
/// A comparison's answer: one summary per strategy (mean ± standard deviation over its seeds), the best by mean,
/// whether it beats the runner-up beyond the noise (<see cref="Significance"/>), and a <see cref="Recommendation"/>.
/// </summary>
/// <param name="Strategies">Strategies with at least one finished run, in the order run.</param>
/// <param name="Metric">The metric compared.</param>
/// <param name="BestIndex">Index into <paramref name="Strategies"/> of the best mean, or null.</param>
/// <param name="RunnerUpIndex">Index of the second-best mean, or null.</param>
/// <param name="Test">The best against the runner-up; null with fewer than two strategies or a metric that cannot be
/// recomputed from predictions (loss).</param>
/// <param name="Recommendation">The cheapest strategy as good as the best, or null without runs.</param>
public sealed record ComparisonSummary(IReadOnlyList<StrategySummary> Strategies, string Metric, int? BestIndex, int? RunnerUpIndex,
    SignificanceTest? Test, Recommendation? Recommendation)
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>The strategy with the best mean, or null.</summary>
    public StrategySummary? Best => BestIndex is { } i ? Strategies[i] : null;

    /// <summary>The index of the strategy that beats the runner-up beyond the noise (marked ★), or null: a tie, or nothing to compare.</summary>
    public int? WinnerIndex => Test is { Significant: true } ? BestIndex : null;

    /// <summary>Whether the best and the runner-up are within the noise of each other.</summary>
    public bool IsTie => RunnerUpIndex is not null && WinnerIndex is null;

    /// <summary>The verdict in one line: who beats whom and how sure, or "tie".</summary>
    public string Verdict
    {
        get
        {
            if (Best is not { } best) return "No run finished.";
            if (RunnerUpIndex is not { } r) return $"One strategy ({best.Strategy}): nothing to compare it with.";
            StrategySummary runnerUp = Strategies[r];
            if (Test is not { } t)
                return $"No winner marked: {best.Strategy} has the best mean {Metric} ({best.Format(Metric)}) ahead of {runnerUp.Strategy} " +
                    $"({runnerUp.Format(Metric)}), but {Metric} cannot be recomputed from the predictions to test the difference.";
            string how = string.Create(Invariant,
                $"difference {t.Difference:0.####}, 95% interval {t.Low:0.####} to {t.High:0.####}, {(t.PValue < 0.001 ? "p < 0.001" : $"p = {t.PValue:0.###}")}; " +
                $"paired bootstrap over {t.Examples} eval {t.Unit} and {t.BetterSeeds}+{t.OtherSeeds} seed runs");
            return t.Significant
                ? $"★ {best.Strategy} beats {runnerUp.Strategy} by {Metric} beyond the noise ({how})."
                : $"Tie: {best.Strategy} ({best.Format(Metric)}) and {runnerUp.Strategy} ({runnerUp.Format(Metric)}) are within the noise by {Metric} ({how}).";
        }
    }

    /// <summary>
    /// Groups <paramref name="rows"/> by strategy, tests the best mean against the runner-up on the runs' eval
    /// predictions (<paramref name="predictions"/>[i] belongs to <paramref name="rows"/>[i]; <paramref name="eval"/>
    /// holds the targets) and picks the recommendation.
    /// </summary>
    public static ComparisonSummary Compute(IReadOnlyList<ComparisonRow> rows, IReadOnlyList<float[][]> predictions, TaskDataset? eval,
        string metric, double? tolerance = null, int replicates = Significance.DefaultReplicates)
    {
        if (predictions.Count != rows.Count) throw new ArgumentException("One prediction set per row is needed.");
        var (strategies, best, runnerUp) = Rank(rows, metric);
        SignificanceTest? test = null;
        if (best is { } b && runnerUp is { } r && eval is not null)
        {
            float[][][] Predictions(StrategySummary s) => rows.Select((row, i) => (row, i)).Where(x => x.row.Strategy == s.Strategy).Select(x => predictions[x.i]).ToArray();
            test = Significance.PairedBootstrap(eval, metric, strategies[b].Strategy, Predictions(strategies[b]),
                strategies[r].Strategy, Predictions(strategies[r]), replicates);
        }
        return new ComparisonSummary(strategies, metric, best, runnerUp, test, Recommendation.Choose(strategies, best, metric, tolerance, test));
    }

    /// <summary>A summary from its parts (as read back from compare.json): the ranking is recomputed from the rows.</summary>
    public static ComparisonSummary FromParts(IReadOnlyList<ComparisonRow> rows, string metric, SignificanceTest? test, Recommendation? recommendation)
    {
        var (strategies, best, runnerUp) = Rank(rows, metric);
        return new ComparisonSummary(strategies, metric, best, runnerUp, test, recommendation);
    }

    /// <summary>The rows grouped by strategy (in the order first run), and the indices of the best and second-best means.</summary>
    private static (List<StrategySummary> Strategies, int? Best, int? RunnerUp) Rank(IReadOnlyList<ComparisonRow> rows, string metric)
    {
        var strategies = rows.GroupBy(row => row.Strategy).Select(g => new StrategySummary(g.Key, g.ToList())).ToList();
        var ranked = Enumerable.Range(0, strategies.Count).Where(i => strategies[i].Mean(metric) is not null)
            .OrderBy(i => strategies[i].Mean(metric)!.Value * (MetricNames.HigherIsBetter(metric) ? -1 : 1)).ThenBy(i => i).ToList();
        return (strategies, ranked.Count > 0 ? ranked[0] : null, ranked.Count > 1 ? ranked[1] : null);
    }
}
