using SharpTune.Training;

namespace SharpTune.Tests.Training;

public class MetricsTests
{
    private const double Tolerance = 1e-12;

    [Fact]
    public void Three_class_metrics_match_a_hand_computed_confusion_matrix()
    {
        // gold a a a a b b b c c c, predicted a a b c b b a c c b:
        //          pred a  b  c
        //   gold a    2  1  1    (support 4)
        //   gold b    1  2  0    (support 3)
        //   gold c    0  1  2    (support 3)
        int[] gold = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2];
        int[] predicted = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1];
        ClassificationMetrics m = Metrics.Classification(gold, predicted, ["a", "b", "c"]);

        Assert.Equal([[2, 1, 1], [1, 2, 0], [0, 1, 2]], m.ConfusionMatrix);
        Assert.Equal(10, m.Count);
        Assert.Equal(0.6, m.Accuracy, Tolerance);
        Assert.Equal(new ClassScore("a", 2.0 / 3, 0.5, 4.0 / 7, 4), m.PerClass[0], new ScoreComparer());
        Assert.Equal(new ClassScore("b", 0.5, 2.0 / 3, 4.0 / 7, 3), m.PerClass[1], new ScoreComparer());
        Assert.Equal(new ClassScore("c", 2.0 / 3, 2.0 / 3, 2.0 / 3, 3), m.PerClass[2], new ScoreComparer());
        Assert.Equal(38.0 / 63, m.MacroF1, Tolerance); // (4/7 + 4/7 + 2/3) / 3
        // R_K: (c·s − Σ p_k t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²)) = (6·10 − 33) / sqrt(66 · 66) = 9/22.
        Assert.Equal(9.0 / 22, m.Mcc, Tolerance);
    }

    [Fact]
    public void Two_class_mcc_equals_the_binary_formula()
    {
        // TP 6, FN 2, FP 1, TN 11: (6·11 − 1·2) / sqrt(7·8·12·13) = 0.68473678801746…
        int[] gold = [.. Enumerable.Repeat(1, 8), .. Enumerable.Repeat(0, 12)];
        int[] predicted = [.. Enumerable.Repeat(1, 6), 0, 0, 1, .. Enumerable.Repeat(0, 11)];
        ClassificationMetrics m = Metrics.Classification(gold, predicted, ["neg", "pos"]);
        Assert.Equal(64 / Math.Sqrt(7 * 8 * 12 * 13), m.Mcc, Tolerance);
        Assert.Equal(17.0 / 20, m.Accuracy, Tolerance);
    }

    [Fact]
    public void One_class_only_gives_mcc_zero_and_no_nan()
    {
        ClassificationMetrics m = Metrics.Classification([0, 0, 0], [0, 0, 0], ["ham", "spam"]);
        Assert.Equal(1, m.Accuracy);
        Assert.Equal(0, m.Mcc);
        Assert.Equal(1, m.MacroF1); // spam occurs in neither gold nor predictions, so it is not averaged
        Assert.Equal(new ClassScore("spam", 0, 0, 0, 0), m.PerClass[1]);
        Assert.All(m.ToDictionary().Values, v => Assert.True(double.IsFinite(v)));
    }

    [Fact]
    public void A_class_never_predicted_has_f1_zero_and_counts_in_macro_f1()
    {
        ClassificationMetrics m = Metrics.Classification([0, 1, 1], [0, 0, 0], ["ham", "spam"]);
        Assert.Equal(new ClassScore("spam", 0, 0, 0, 2), m.PerClass[1]);
        Assert.Equal(0.5, m.PerClass[0].F1, Tolerance); // P 1/3, R 1
        Assert.Equal(0.25, m.MacroF1, Tolerance);
        Assert.Equal(0, m.Mcc);
    }

    [Fact]
    public void Empty_evaluation_set_gives_zeros()
    {
        ClassificationMetrics m = Metrics.Classification([], [], ["a", "b"]);
        Assert.Equal((0, 0.0, 0.0, 0.0), (m.Count, m.Accuracy, m.MacroF1, m.Mcc));
        RegressionMetrics r = Metrics.Regression([], []);
        Assert.Equal((0, 0.0, 0.0, 0.0), (r.Count, r.Pearson, r.Spearman, r.Mse));
    }

    [Fact]
    public void Out_of_range_ids_and_length_mismatches_are_argument_errors()
    {
        Assert.Throws<ArgumentException>(() => Metrics.Classification([0, 2], [0, 1], ["a", "b"]));
        Assert.Throws<ArgumentException>(() => Metrics.Classification([0], [0, 1], ["a", "b"]));
        Assert.Throws<ArgumentException>(() => Metrics.Regression([1f], []));
        Assert.Throws<ArgumentException>(() => Metrics.MultiLabel([1f, 0f, 1f], [1f, 0f, 1f], ["x", "y"]));
    }

    [Fact]
    public void Regression_pearson_and_mse_match_hand_values()
    {
        RegressionMetrics m = Metrics.Regression([1f, 2f, 3f], [2f, 4f, 7f]);
        Assert.Equal(15 / Math.Sqrt(228), m.Pearson, Tolerance); // sxy 5, sxx 2, syy 114/9
        Assert.Equal(7, m.Mse, Tolerance); // (1 + 4 + 16) / 3
        Assert.Equal(1, m.Spearman, Tolerance);
    }

    [Fact]
    public void Spearman_gives_ties_average_ranks()
    {
        Assert.Equal([1, 2.5, 2.5, 4, 5], Metrics.Ranks([1, 2, 2, 3, 4]));
        Assert.Equal([1, 4, 2.5, 2.5, 5], Metrics.Ranks([1, 3, 2, 2, 5]));
        // Pearson of those ranks: sxy 7.25, sxx = syy = 9.5 → 29/38.
        RegressionMetrics m = Metrics.Regression([1f, 2f, 2f, 3f, 4f], [1f, 3f, 2f, 2f, 5f]);
        Assert.Equal(29.0 / 38, m.Spearman, Tolerance);
    }

    [Fact]
    public void Constant_predictions_give_zero_correlation_not_nan()
    {
        RegressionMetrics m = Metrics.Regression([1f, 2f, 3f], [5f, 5f, 5f]);
        Assert.Equal(0, m.Pearson);
        Assert.Equal(0, m.Spearman);
        Assert.Equal((16 + 9 + 4) / 3.0, m.Mse, Tolerance);
    }

    [Fact]
    public void Multi_label_micro_and_macro_f1_use_threshold_one_half_inclusive()
    {
        float[] gold = [1, 0, 1, 0, 1, 0, 1, 1, 0];
        float[] probabilities = [0.9f, 0.2f, 0.4f, 0.1f, 0.7f, 0.5f, 0.6f, 0.8f, 0.1f];
        // predicted: [1 0 0], [0 1 1], [1 1 0] → x: TP 2; y: TP 2; z: FP 1, FN 1.
        MultiLabelMetrics m = Metrics.MultiLabel(gold, probabilities, ["x", "y", "z"]);
        Assert.Equal(3, m.Count);
        Assert.Equal([1.0, 1.0, 0.0], m.PerClass.Select(c => c.F1));
        Assert.Equal(0.8, m.MicroF1, Tolerance); // TP 4, FP 1, FN 1
        Assert.Equal(2.0 / 3, m.MacroF1, Tolerance);
        Assert.Equal(1.0 / 3, m.SubsetAccuracy, Tolerance);

        // 0/1 predictions work the same way.
        MultiLabelMetrics same = Metrics.MultiLabel(gold, [1, 0, 0, 0, 1, 1, 1, 1, 0], ["x", "y", "z"]);
        Assert.Equal(m.MicroF1, same.MicroF1);
    }

    [Fact]
    public void Argmax_picks_the_first_largest_value()
    {
        Assert.Equal(1, Metrics.ArgMax([0.1f, 0.9f, 0f]));
        Assert.Equal(0, Metrics.ArgMax([3f, 3f, -1f]));
        Assert.Equal(2, Metrics.ArgMax([-5f, -4f, -3f]));
        Assert.Throws<ArgumentException>(() => Metrics.ArgMax([]));
    }

    [Fact]
    public void Metrics_are_found_by_name_with_loss_when_set()
    {
        ClassificationMetrics m = Metrics.Classification([0, 1], [0, 0], ["ham", "spam"]) with { Loss = 0.25 };
        Assert.Equal(0.5, m.Get(MetricNames.Accuracy));
        Assert.Equal(0.25, m.Get("loss"));
        Assert.Equal(["loss", "accuracy", "macro_f1", "mcc", "f1/ham", "f1/spam"], m.ToDictionary().Keys);
        var error = Assert.Throws<SharpTuneException>(() => m.Get("pearson"));
        Assert.Contains("accuracy", error.Message);
        Assert.DoesNotContain("loss", Metrics.Regression([1f, 2f], [1f, 2f]).ToDictionary().Keys);
        Assert.Equal(0, Metrics.Regression([1f, 2f], [1f, 2f]).Get("mse"));
    }

    [Theory]
    [InlineData("accuracy", true)]
    [InlineData("macro_f1", true)]
    [InlineData("mcc", true)]
    [InlineData("pearson", true)]
    [InlineData("spearman", true)]
    [InlineData("micro_f1", true)]
    [InlineData("f1/spam", true)]
    [InlineData("loss", false)]
    [InlineData("mse", false)]
    public void Direction_of_each_metric_is_known(string name, bool higherIsBetter)
    {
        Assert.Equal(higherIsBetter, MetricNames.HigherIsBetter(name));
    }

    [Fact]
    public void Unknown_metric_name_lists_the_known_ones()
    {
        Assert.Contains("macro_f1", Assert.Throws<SharpTuneException>(() => MetricNames.HigherIsBetter("f2")).Message);
    }

    private sealed class ScoreComparer : IEqualityComparer<ClassScore>
    {
        public bool Equals(ClassScore? x, ClassScore? y) =>
            x is not null && y is not null && x.Label == y.Label && x.Support == y.Support
            && Math.Abs(x.Precision - y.Precision) < Tolerance && Math.Abs(x.Recall - y.Recall) < Tolerance && Math.Abs(x.F1 - y.F1) < Tolerance;

        public int GetHashCode(ClassScore obj) => obj.Label.GetHashCode();
    }
}
