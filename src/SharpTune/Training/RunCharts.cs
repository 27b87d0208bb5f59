using ScottPlot;

namespace SharpTune.Training;

/// <summary>The training chart (training.png), drawn with ScottPlot.</summary>
internal static class RunCharts
{
    /// <summary>Headline metrics drawn when the evaluations have them (classification, multi-label, regression).</summary>
    private static readonly string[] Headline = [MetricNames.Accuracy, MetricNames.MacroF1, MetricNames.MicroF1, MetricNames.Pearson, MetricNames.Spearman];

    /// <summary>
    /// Left axis: running train loss per optimizer step and eval loss per evaluation. Right axis: the headline
    /// metrics per evaluation. Writes a PNG of <paramref name="width"/> × <paramref name="height"/> pixels.
    /// </summary>
    public static void Write(string path, IReadOnlyList<StepEvent> steps, IReadOnlyList<EvaluationEvent> evaluations, int width = 1000, int height = 560) =>
        Build(steps, evaluations).SavePng(path, width, height);

    /// <summary>The same chart as an SVG document, for inline use in HTML.</summary>
    public static string Svg(IReadOnlyList<StepEvent> steps, IReadOnlyList<EvaluationEvent> evaluations, int width = 1000, int height = 560) =>
        Build(steps, evaluations).GetSvgXml(width, height);

    /// <summary>Steps drawn at most: a long run (a frozen head under a time budget makes many thousands) is thinned evenly.</summary>
    private const int MaxStepPoints = 2000;

    private static Plot Build(IReadOnlyList<StepEvent> steps, IReadOnlyList<EvaluationEvent> evaluations)
    {
        if (steps.Count > MaxStepPoints)
        {
            int stride = (steps.Count + MaxStepPoints - 1) / MaxStepPoints;
            steps = steps.Where((_, i) => i % stride == 0 || i == steps.Count - 1).ToList();
        }
        var plot = new Plot();
        plot.Title(evaluations.Count == 0 ? "Training loss" : "Training loss and evaluation");
        plot.XLabel("optimizer step");
        plot.YLabel("loss");

        if (steps.Count > 0)
        {
            var train = plot.Add.Scatter(steps.Select(s => (double)s.Step).ToArray(), steps.Select(s => s.Loss).ToArray());
            train.LegendText = "train loss (running mean over the epoch)";
            train.MarkerSize = steps.Count > 60 ? 0 : 4;
        }

        double[] evalSteps = evaluations.Select(e => (double)e.Step).ToArray();
        if (evaluations.Count > 0 && evaluations.All(e => e.Metrics.ContainsKey(MetricNames.Loss)))
        {
            var evalLoss = plot.Add.Scatter(evalSteps, evaluations.Select(e => e.Metrics[MetricNames.Loss]).ToArray());
            evalLoss.LegendText = "eval loss";
            evalLoss.MarkerSize = 7;
            evalLoss.LineWidth = 2; // solid: the SVG backend cannot draw dashes (SkiaSharp prints "Unsupported path effect")
        }

        var metrics = Headline.Where(m => evaluations.Count > 0 && evaluations.All(e => e.Metrics.ContainsKey(m))).ToList();
        foreach (string metric in metrics)
        {
            var line = plot.Add.Scatter(evalSteps, evaluations.Select(e => e.Metrics[metric]).ToArray());
            line.LegendText = "eval " + metric + " (right axis)";
            line.MarkerSize = 7;
            line.Axes.YAxis = plot.Axes.Right;
        }
        if (metrics.Count > 0)
        {
            plot.Axes.Right.Label.Text = "metric";
            // Metrics live in [0, 1] (correlations in [-1, 1]): a fixed scale shows how far from perfect a run is.
            double lowest = metrics.SelectMany(m => evaluations.Select(e => e.Metrics[m])).Min();
            plot.Axes.SetLimitsY(lowest < 0 ? -1.05 : -0.05, 1.05, plot.Axes.Right);
        }

        plot.ShowLegend(Edge.Bottom);
        return plot;
    }
}
