namespace SharpTune.Training;

/// <summary>
/// Whether <see cref="Better"/> beats <see cref="Other"/> by more than the noise, from a paired bootstrap
/// (<see cref="Significance.PairedBootstrap"/>).
/// </summary>
/// <param name="Better">The strategy with the better mean.</param>
/// <param name="Other">The strategy it is tested against (the runner-up).</param>
/// <param name="Metric">The metric compared.</param>
/// <param name="Difference">How much better <paramref name="Better"/>'s mean over its seeds is on the whole eval set
/// (positive; for loss-like metrics the amount by which it is lower).</param>
/// <param name="Low">2.5th percentile of the bootstrapped difference.</param>
/// <param name="High">97.5th percentile of the bootstrapped difference.</param>
/// <param name="PValue">Share of the replicates (plus one, over replicates plus one) in which <paramref name="Better"/> was
/// not better: the one-sided p-value of "it is better".</param>
/// <param name="BetterStandardError">Standard deviation of <paramref name="Better"/>'s metric over the replicates: the
/// noise of its figure when there is one seed.</param>
/// <param name="Replicates">Bootstrap replicates drawn.</param>
/// <param name="Examples">Eval examples.</param>
/// <param name="BetterSeeds">Runs (seeds) of <paramref name="Better"/>.</param>
/// <param name="OtherSeeds">Runs (seeds) of <paramref name="Other"/>.</param>
public sealed record SignificanceTest(string Better, string Other, string Metric, double Difference, double Low, double High, double PValue,
    double BetterStandardError, int Replicates, int Examples, int BetterSeeds, int OtherSeeds)
{
    /// <summary>The level below which <see cref="PValue"/> counts as "beats it": 0.05.</summary>
    public const double Alpha = 0.05;

    /// <summary>True when <see cref="Better"/> beats <see cref="Other"/> beyond the noise (p &lt; <see cref="Alpha"/>).</summary>
    public bool Significant => PValue < Alpha;
}

/// <summary>
/// Tests whether one set of runs beats another on the same eval examples.
/// <para>
/// Two things make a figure noisy: which examples happen to be in the eval set, and the seed (head initialisation,
/// dropout, batch order). Each bootstrap replicate therefore draws the eval examples with replacement — the same
/// draw for both sides, since both predicted the same examples (paired) — and, independently for each side, draws
/// its seeds with replacement; a side's value is the mean of the metric over its drawn seeds on the drawn examples.
/// With one seed per side this is the classic paired bootstrap over examples (Koehn 2004; Berg-Kirkpatrick et al. 2012);
/// with several, seed-to-seed spread widens the interval as it should. A paired t-test across seeds was the
/// alternative: with three seeds it has two degrees of freedom and ignores the eval-set noise, so it rarely decides.
/// </para>
/// The metric is recomputed on every replicate by <see cref="TaskType.Evaluate"/>, so macro-F1 or MCC are
/// tested as themselves, not through per-example accuracy.
/// </summary>
public static class Significance
{
    /// <summary>Replicates drawn by default: enough for a p-value near 0.05 to be within ±0.01.</summary>
    public const int DefaultReplicates = 2000;

    /// <summary>
    /// Bootstraps the difference of <paramref name="metric"/> between the runs of <paramref name="better"/> and of
    /// <paramref name="other"/> (each run: per-example probabilities over <paramref name="eval"/>, in dataset order).
    /// Returns null when the metric is not one <see cref="TaskType.Evaluate"/> gives (the loss is not recomputed from
    /// probabilities), or for token tasks (their examples are windows of sentences, not independent draws).
    /// </summary>
    public static SignificanceTest? PairedBootstrap(TaskDataset eval, string metric,
        string betterName, IReadOnlyList<float[][]> better, string otherName, IReadOnlyList<float[][]> other,
        int replicates = DefaultReplicates, int seed = 20261202)
    {
        if (better.Count == 0 || other.Count == 0) throw new ArgumentException("Each side needs at least one run.");
        if (better.Concat(other).Any(run => run.Length != eval.Count))
            throw new ArgumentException($"Every run needs one prediction per eval example ({eval.Count}).");
        if (eval.Task.PerToken || !eval.Task.Evaluate(eval, better[0]).ToDictionary().ContainsKey(metric)) return null;

        double sign = MetricNames.HigherIsBetter(metric) ? 1 : -1;
        double observed = sign * (MeanOver(eval, metric, better) - MeanOver(eval, metric, other));

        var random = new Random(seed);
        int n = eval.Count;
        var differences = new double[replicates];
        var betterValues = new double[replicates];
        int notBetter = 0;
        var draw = new int[n];
        for (int r = 0; r < replicates; r++)
        {
            for (int i = 0; i < n; i++) draw[i] = random.Next(n);
            TaskDataset sample = Subset(eval, draw);
            double a = MeanOfDrawnSeeds(sample, draw, metric, better, random);
            double b = MeanOfDrawnSeeds(sample, draw, metric, other, random);
            betterValues[r] = a;
            differences[r] = sign * (a - b);
            if (differences[r] <= 0) notBetter++;
        }
        Array.Sort(differences);
        double mean = betterValues.Average();
        double standardError = Math.Sqrt(betterValues.Sum(v => (v - mean) * (v - mean)) / Math.Max(1, replicates - 1));
        return new SignificanceTest(betterName, otherName, metric, observed, Percentile(differences, 0.025), Percentile(differences, 0.975),
            (notBetter + 1.0) / (replicates + 1.0), standardError, replicates, n, better.Count, other.Count);
    }

    /// <summary>The metric of one run's probabilities over <paramref name="eval"/>.</summary>
    public static double MetricOf(TaskDataset eval, string metric, float[][] probabilities) =>
        eval.Task.Evaluate(eval, probabilities).ToDictionary()[metric];

    private static double MeanOver(TaskDataset eval, string metric, IReadOnlyList<float[][]> runs) =>
        runs.Average(run => MetricOf(eval, metric, run));

    private static double MeanOfDrawnSeeds(TaskDataset sample, int[] draw, string metric, IReadOnlyList<float[][]> runs, Random random)
    {
        double sum = 0;
        for (int s = 0; s < runs.Count; s++)
        {
            float[][] run = runs[runs.Count == 1 ? 0 : random.Next(runs.Count)];
            sum += MetricOf(sample, metric, draw.Select(i => run[i]).ToArray());
        }
        return sum / runs.Count;
    }

    /// <summary>The examples of <paramref name="data"/> at <paramref name="indices"/> (repeats allowed), targets included.</summary>
    private static TaskDataset Subset(TaskDataset data, int[] indices) =>
        new(data.Task, data.NumLabels, indices.Select(i => data.InputIds[i]).ToList(), indices.Select(i => data.TokenTypeIds[i]).ToList(),
            data.Labels is { } labels ? indices.Select(i => labels[i]).ToList() : null,
            data.Targets is { } targets ? indices.Select(i => targets[i]).ToList() : null,
            data.LabelNames);

    // Linear interpolation between the closest ranks of a sorted array.
    private static double Percentile(double[] sorted, double p)
    {
        double position = p * (sorted.Length - 1);
        int low = (int)Math.Floor(position), high = (int)Math.Ceiling(position);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }
}
