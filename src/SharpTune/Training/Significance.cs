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
/// <param name="Examples">The eval units resampled: examples, or sentences for a token task (see <paramref name="Unit"/>).</param>
/// <param name="BetterSeeds">Runs (seeds) of <paramref name="Better"/>.</param>
/// <param name="OtherSeeds">Runs (seeds) of <paramref name="Other"/>.</param>
/// <param name="Unit">What was resampled, in words: "examples", or "sentences" for a token task.</param>
public sealed record SignificanceTest(string Better, string Other, string Metric, double Difference, double Low, double High, double PValue,
    double BetterStandardError, int Replicates, int Examples, int BetterSeeds, int OtherSeeds, string Unit = Significance.ExampleUnit)
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
/// <para>
/// A token task's examples are windows of sentences, and the words of one sentence are not independent draws: there
/// the unit drawn is a sentence (all its windows together, each copy counted as a sentence of its own), and the token
/// metric — token accuracy, macro-F1, entity F1 — is recomputed on the words of the drawn sentences.
/// </para>
/// </summary>
public static class Significance
{
    /// <summary>Replicates drawn by default: enough for a p-value near 0.05 to be within ±0.01.</summary>
    public const int DefaultReplicates = 2000;

    /// <summary>The unit resampled for per-text tasks, and for token tasks.</summary>
    public const string ExampleUnit = "examples", SentenceUnit = "sentences";

    /// <summary>
    /// Bootstraps the difference of <paramref name="metric"/> between the runs of <paramref name="better"/> and of
    /// <paramref name="other"/> (each run: per-example probabilities over <paramref name="eval"/>, in dataset order), drawing
    /// examples — or, when the examples are windows of sentences, whole sentences. Returns null when the metric is not one
    /// <see cref="TaskType.Evaluate"/> gives here (the loss is not recomputed from probabilities; entity scores need B-/I- tags).
    /// </summary>
    public static SignificanceTest? PairedBootstrap(TaskDataset eval, string metric,
        string betterName, IReadOnlyList<float[][]> better, string otherName, IReadOnlyList<float[][]> other,
        int replicates = DefaultReplicates, int seed = 20261202)
    {
        if (better.Count == 0 || other.Count == 0) throw new ArgumentException("Each side needs at least one run.");
        if (better.Concat(other).Any(run => run.Length != eval.Count))
            throw new ArgumentException($"Every run needs one prediction per eval example ({eval.Count}).");
        if (!eval.Task.Evaluate(eval, better[0]).ToDictionary().ContainsKey(metric)) return null;

        double sign = MetricNames.HigherIsBetter(metric) ? 1 : -1;
        double observed = sign * (MeanOver(eval, metric, better) - MeanOver(eval, metric, other));

        int[][] units = Units(eval);
        var random = new Random(seed);
        int n = units.Length;
        var differences = new double[replicates];
        var betterValues = new double[replicates];
        int notBetter = 0;
        var drawn = new int[n];
        for (int r = 0; r < replicates; r++)
        {
            for (int i = 0; i < n; i++) drawn[i] = random.Next(n);
            var (sample, examples) = Subset(eval, units, drawn);
            double a = MeanOfDrawnSeeds(sample, examples, metric, better, random);
            double b = MeanOfDrawnSeeds(sample, examples, metric, other, random);
            betterValues[r] = a;
            differences[r] = sign * (a - b);
            if (differences[r] <= 0) notBetter++;
        }
        Array.Sort(differences);
        double mean = betterValues.Average();
        double standardError = Math.Sqrt(betterValues.Sum(v => (v - mean) * (v - mean)) / Math.Max(1, replicates - 1));
        return new SignificanceTest(betterName, otherName, metric, observed, Percentile(differences, 0.025), Percentile(differences, 0.975),
            (notBetter + 1.0) / (replicates + 1.0), standardError, replicates, n, better.Count, other.Count,
            eval.Sentences is null ? ExampleUnit : SentenceUnit);
    }

    /// <summary>The metric of one run's probabilities over <paramref name="eval"/>.</summary>
    public static double MetricOf(TaskDataset eval, string metric, float[][] probabilities) =>
        eval.Task.Evaluate(eval, probabilities).ToDictionary()[metric];

    private static double MeanOver(TaskDataset eval, string metric, IReadOnlyList<float[][]> runs) =>
        runs.Average(run => MetricOf(eval, metric, run));

    private static double MeanOfDrawnSeeds(TaskDataset sample, int[] examples, string metric, IReadOnlyList<float[][]> runs, Random random)
    {
        double sum = 0;
        for (int s = 0; s < runs.Count; s++)
        {
            float[][] run = runs[runs.Count == 1 ? 0 : random.Next(runs.Count)];
            sum += MetricOf(sample, metric, examples.Select(i => run[i]).ToArray());
        }
        return sum / runs.Count;
    }

    /// <summary>The independent draws: each example alone, or each sentence's examples (windows) together.</summary>
    private static int[][] Units(TaskDataset data) => data.Sentences is { } sentences
        ? Enumerable.Range(0, data.Count).GroupBy(i => sentences[i]).Select(g => g.ToArray()).ToArray()
        : Enumerable.Range(0, data.Count).Select(i => new[] { i }).ToArray();

    /// <summary>
    /// The examples of the <paramref name="drawn"/> units (repeats allowed), targets included, and their indices in
    /// <paramref name="data"/>; the k-th drawn sentence becomes sentence k, so a sentence drawn twice counts twice.
    /// </summary>
    private static (TaskDataset Sample, int[] Examples) Subset(TaskDataset data, int[][] units, int[] drawn)
    {
        int[] examples = drawn.SelectMany(u => units[u]).ToArray();
        int[]? sentences = data.Sentences is null ? null : drawn.SelectMany((u, k) => units[u].Select(_ => k)).ToArray();
        var sample = new TaskDataset(data.Task, data.NumLabels, examples.Select(i => data.InputIds[i]).ToList(), examples.Select(i => data.TokenTypeIds[i]).ToList(),
            data.Labels is { } labels ? examples.Select(i => labels[i]).ToList() : null,
            data.Targets is { } targets ? examples.Select(i => targets[i]).ToList() : null,
            data.LabelNames,
            data.TokenLabels is { } tokenLabels ? examples.Select(i => tokenLabels[i]).ToList() : null,
            sentences);
        return (sample, examples);
    }

    // Linear interpolation between the closest ranks of a sorted array.
    private static double Percentile(double[] sorted, double p)
    {
        double position = p * (sorted.Length - 1);
        int low = (int)Math.Floor(position), high = (int)Math.Ceiling(position);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }
}
