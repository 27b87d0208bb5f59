using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>The tie rule (paired bootstrap over eval examples and seeds) and the recommendation, on constructed cases.</summary>
public class SignificanceTests
{
    private const int Examples = 200;

    /// <summary>200 eval examples, labels alternating no/yes (the token ids do not matter: only targets are scored).</summary>
    private static TaskDataset Eval() => new(TaskType.SingleLabel, 2,
        Enumerable.Range(0, Examples).Select(_ => new long[] { 2, 3 }).ToList(), Enumerable.Range(0, Examples).Select(_ => new long[2]).ToList(),
        Enumerable.Range(0, Examples).Select(i => (long)(i % 2)).ToList(), labelNames: ["no", "yes"]);

    /// <summary>Predictions that are right on every example except <paramref name="wrong"/>.</summary>
    private static float[][] WrongOn(IEnumerable<int> wrong)
    {
        var set = wrong.ToHashSet();
        return Enumerable.Range(0, Examples).Select(i =>
        {
            bool yes = (i % 2 == 1) ^ set.Contains(i);
            return yes ? new[] { 0.2f, 0.8f } : new[] { 0.8f, 0.2f };
        }).ToArray();
    }

    private static float[][] WrongOnFirst(int count, int offset = 0) => WrongOn(Enumerable.Range(offset, count));

    [Fact]
    public void Two_emails_apart_is_a_tie()
    {
        // A misses examples 0..9, B misses those and 10..11: accuracy 0.95 against 0.94.
        var test = Significance.PairedBootstrap(Eval(), MetricNames.Accuracy, "a", [WrongOnFirst(10)], "b", [WrongOnFirst(12)])!;

        Assert.Equal(0.01, test.Difference, 12);
        Assert.False(test.Significant, $"p = {test.PValue}");
        Assert.True(test.PValue > 0.1, $"p = {test.PValue}");
        Assert.True(test.Low <= 0 && test.High > 0, $"[{test.Low}, {test.High}]");
    }

    [Fact]
    public void Forty_emails_apart_is_a_win()
    {
        var test = Significance.PairedBootstrap(Eval(), MetricNames.MacroF1, "a", [WrongOnFirst(10)], "b", [WrongOnFirst(50)])!;

        Assert.True(test.Significant, $"p = {test.PValue}");
        Assert.True(test.PValue < 0.001, $"p = {test.PValue}");
        Assert.True(test.Low > 0.1, $"lower bound {test.Low}");
        // The observed difference is the macro-F1 difference computed directly.
        double direct = Significance.MetricOf(Eval(), MetricNames.MacroF1, WrongOnFirst(10)) - Significance.MetricOf(Eval(), MetricNames.MacroF1, WrongOnFirst(50));
        Assert.Equal(direct, test.Difference, 12);
    }

    [Fact]
    public void A_lower_loss_like_metric_counts_as_better()
    {
        // Regression: mse, lower is better. The "better" side is closer to the targets on every example.
        var eval = new TaskDataset(TaskType.Regression, 1, Enumerable.Range(0, 50).Select(_ => new long[] { 2, 3 }).ToList(),
            Enumerable.Range(0, 50).Select(_ => new long[2]).ToList(), targets: Enumerable.Range(0, 50).Select(i => new[] { (float)i }).ToList());
        float[][] Off(float by) => Enumerable.Range(0, 50).Select(i => new[] { i + (i % 2 == 0 ? by : -by) }).ToArray();

        var test = Significance.PairedBootstrap(eval, MetricNames.Mse, "close", [Off(0.1f)], "far", [Off(2f)])!;

        Assert.Equal(4 - 0.01, test.Difference, 4);
        Assert.True(test.Significant);
    }

    [Fact]
    public void Seed_spread_turns_a_clear_single_seed_win_into_a_tie()
    {
        // A: two good seeds (2 errors) and one bad (40 errors): mean accuracy 0.927. B: three steady seeds (25 errors): 0.875.
        float[][][] a = [WrongOnFirst(2), WrongOnFirst(2, offset: 100), WrongOnFirst(40, offset: 50)];
        float[][][] b = [WrongOnFirst(25, offset: 20), WrongOnFirst(25, offset: 120), WrongOnFirst(25, offset: 60)];

        var oneSeed = Significance.PairedBootstrap(Eval(), MetricNames.Accuracy, "a", [a[0]], "b", [b[0]])!;
        var threeSeeds = Significance.PairedBootstrap(Eval(), MetricNames.Accuracy, "a", a, "b", b)!;

        Assert.True(oneSeed.Significant, $"one seed: p = {oneSeed.PValue}");
        Assert.Equal((198 + 198 + 160) / 600.0 - 0.875, threeSeeds.Difference, 12);
        // Drawing the bad seed at least twice of three (probability 7/27 ≈ 0.26) puts A below B.
        Assert.False(threeSeeds.Significant, $"three seeds: p = {threeSeeds.PValue}");
        Assert.InRange(threeSeeds.PValue, 0.15, 0.4);
    }

    [Fact]
    public void The_loss_is_not_tested()
    {
        Assert.Null(Significance.PairedBootstrap(Eval(), MetricNames.Loss, "a", [WrongOnFirst(1)], "b", [WrongOnFirst(2)]));
    }

    private static ComparisonRow Row(string strategy, int seed, double f1, double secondsPerEpoch, long peakMiB) =>
        new(strategy, 1e-3, 100, 1000, 10, secondsPerEpoch * 3, 50, peakMiB << 20, true, null, null,
            new Dictionary<string, double> { [MetricNames.MacroF1] = f1 }, 1, true, false, strategy, Seed: seed, EpochsTrained: 3, Steps: 30);

    private static IReadOnlyList<ComparisonRow> ThreeStrategies() =>
    [
        Row("frozen", 42, 0.90, 1, 800), Row("lora", 42, 0.965, 80, 1500), Row("full", 42, 0.97, 100, 2000),
        Row("frozen", 43, 0.91, 1, 800), Row("lora", 43, 0.97, 80, 1500), Row("full", 43, 0.98, 100, 2000),
        Row("frozen", 44, 0.92, 1, 800), Row("lora", 44, 0.96, 80, 1500), Row("full", 44, 0.96, 100, 2000),
    ];

    [Fact]
    public void The_recommendation_is_the_cheapest_strategy_within_one_standard_deviation_of_the_best()
    {
        var rows = ThreeStrategies();

        var summary = ComparisonSummary.Compute(rows, rows.Select(_ => Array.Empty<float[]>()).ToList(), eval: null, MetricNames.MacroF1);

        Assert.Equal("full", summary.Best!.Strategy);
        Assert.Equal(0.01, summary.Best.Std(MetricNames.MacroF1)!.Value, 12); // 0.97, 0.98, 0.96
        var recommendation = summary.Recommendation!;
        Assert.Equal("lora", recommendation.Strategy); // 0.965, within 0.01 of 0.97; frozen (0.91) is not
        Assert.Equal(0.8, recommendation.TimeRatio, 12);
        Assert.Equal(0.75, recommendation.MemoryRatio!.Value, 12);
        Assert.Contains("Recommendation: lora — macro_f1 0.9650 ± 0.0050, within 0.01 (one standard deviation of full over 3 seeds) of the best, full (0.9700 ± 0.0100)", recommendation.Text);
        Assert.Contains("0.8× the time per epoch of full and 0.75× its peak memory", recommendation.Text);
    }

    [Fact]
    public void A_tolerance_replaces_the_standard_deviation()
    {
        var rows = ThreeStrategies();

        var summary = ComparisonSummary.Compute(rows, rows.Select(_ => Array.Empty<float[]>()).ToList(), eval: null, MetricNames.MacroF1, tolerance: 0.07);

        Assert.Equal("frozen", summary.Recommendation!.Strategy);
        Assert.Equal(0.01, summary.Recommendation.TimeRatio, 12);
        Assert.Contains("the tolerance given", summary.Recommendation.Text);
    }

    [Fact]
    public void Without_a_significant_difference_no_strategy_is_marked_and_the_verdict_says_tie()
    {
        var eval = Eval();
        IReadOnlyList<ComparisonRow> rows = [Row("a", 42, Significance.MetricOf(eval, MetricNames.MacroF1, WrongOnFirst(10)), 1, 100),
            Row("b", 42, Significance.MetricOf(eval, MetricNames.MacroF1, WrongOnFirst(12)), 2, 100)];

        var tie = ComparisonSummary.Compute(rows, [WrongOnFirst(10), WrongOnFirst(12)], eval, MetricNames.MacroF1);

        Assert.Equal(0, tie.BestIndex);
        Assert.Null(tie.WinnerIndex);
        Assert.True(tie.IsTie);
        Assert.StartsWith("Tie: a (0.9500) and b (0.9400) are within the noise by macro_f1", tie.Verdict);

        IReadOnlyList<ComparisonRow> apart = [rows[0], Row("b", 42, Significance.MetricOf(eval, MetricNames.MacroF1, WrongOnFirst(50)), 2, 100)];
        var win = ComparisonSummary.Compute(apart, [WrongOnFirst(10), WrongOnFirst(50)], eval, MetricNames.MacroF1);
        Assert.Equal(0, win.WinnerIndex);
        Assert.StartsWith("★ a beats b by macro_f1 beyond the noise", win.Verdict);
    }
}
