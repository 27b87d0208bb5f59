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

    /// <summary>
    /// A token task's eval set of hand-made windows: each sentence is a list of windows, each window a list of per-token
    /// gold tag ids (null: the token does not count — a special token, or a word another window owns).
    /// </summary>
    private static TaskDataset TokenEval(string[] tags, params int?[][][] sentences)
    {
        var windows = sentences.SelectMany((windows, s) => windows.Select(w => (Tokens: w, Sentence: s))).ToList();
        return new TaskDataset(TaskType.Token, tags.Length, windows.Select(w => new long[w.Tokens.Length]).ToList(),
            windows.Select(w => new long[w.Tokens.Length]).ToList(), labelNames: tags,
            tokenLabels: windows.Select(w => w.Tokens.Select(t => t is { } id ? id : TokenWindows.IgnoreIndex).ToArray()).ToList(),
            sentences: windows.Select(w => w.Sentence).ToList());
    }

    /// <summary>One run's probabilities over those windows: the tag id chosen per token (null: no preference), as one-hot rows.</summary>
    private static float[][] TokenRun(int tags, params int?[][] windows) =>
        windows.Select(w => w.SelectMany(t => Enumerable.Range(0, tags).Select(k => t is { } id ? (k == id ? 0.9f : 0.1f / (tags - 1)) : 1f / tags)).ToArray()).ToArray();

    [Fact]
    public void A_token_task_is_bootstrapped_by_sentence_and_the_token_metric_recomputed_on_the_drawn_words()
    {
        // Sentence 0: four words A B A B in two windows ([CLS] w0 w1 [SEP], [CLS] w1 w2 w3 [SEP]; w1 owned by the first).
        // Sentence 1: two words A A in one window. "good" tags every word right; "bad" misses w1 and w3 of sentence 0.
        string[] tags = ["A", "B"];
        var eval = TokenEval(tags, [[null, 0, 1, null], [null, null, 0, 1, null]], [[null, 0, 0, null]]);
        float[][] good = TokenRun(2, [null, 0, 1, null], [null, null, 0, 1, null], [null, 0, 0, null]);
        float[][] bad = TokenRun(2, [null, 0, 0, null], [null, null, 0, 0, null], [null, 0, 0, null]);

        var test = Significance.PairedBootstrap(eval, MetricNames.TokenAccuracy, "good", [good], "bad", [bad])!;

        // By hand: two sentences drawn with replacement. {0,0}: bad gets 4 of 8 words → difference 1/2 (probability 1/4);
        // {0,1} or {1,0}: 4 of 6 → 1/3 (1/2); {1,1}: 4 of 4 → 0 (1/4). Observed on the eval set itself: 1 − 4/6 = 1/3.
        // (Drawing words instead would give P(difference ≤ 0) = (2/3)^6 ≈ 0.09; drawing windows, (1/3)^3 ≈ 0.04.)
        Assert.Equal(1 / 3.0, test.Difference, 12);
        Assert.Equal(0, test.Low, 12);
        Assert.Equal(0.5, test.High, 12);
        Assert.InRange(test.PValue, 0.2, 0.3); // 1/4, ± five standard errors of 2,000 replicates
        Assert.Equal(0, test.BetterStandardError, 12); // good is right on every draw
        Assert.Equal(2, test.Examples);
        Assert.Equal(Significance.SentenceUnit, test.Unit);
    }

    [Fact]
    public void One_eval_sentence_gives_every_replicate_its_own_entity_f1_difference()
    {
        // One sentence (two windows): gold PER over w0–w1 and LOC at w3. The other run breaks PER after its first word:
        // it finds PER(w0) and LOC(w3), one of its two entities right and one of the two gold ones: F1 1/2 (seqeval).
        string[] tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"];
        var eval = TokenEval(tags, [[null, 1, 2, null], [null, null, 0, 3, null]]);
        float[][] right = TokenRun(5, [null, 1, 2, null], [null, null, 0, 3, null]);
        float[][] broken = TokenRun(5, [null, 1, 0, null], [null, null, 0, 3, null]);

        var test = Significance.PairedBootstrap(eval, MetricNames.EntityF1, "right", [right], "broken", [broken])!;

        // Resampling one sentence draws it every time: every replicate's difference is the observed one.
        Assert.Equal(0.5, test.Difference, 12);
        Assert.Equal(0.5, test.Low, 12);
        Assert.Equal(0.5, test.High, 12);
        Assert.Equal(1.0 / (Significance.DefaultReplicates + 1), test.PValue, 12);
        Assert.Equal(1, test.Examples);
    }

    [Fact]
    public void Entity_scores_of_tags_without_a_scheme_are_not_tested()
    {
        var eval = TokenEval(["A", "B"], [[null, 0, 1, null]]);
        float[][] run = TokenRun(2, [null, 0, 1, null]);

        Assert.Null(Significance.PairedBootstrap(eval, MetricNames.EntityF1, "a", [run], "b", [run]));
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
