using System.Globalization;
using ScottPlot;

namespace SharpTune.Training;

/// <summary>
/// The comparison chart: each strategy's metric (mean, with ± one standard deviation over its seeds as error bars)
/// against its train time per epoch on a logarithmic axis — quality against cost, whatever the budget (under a time
/// budget every run trains equally long, so the total time would tell nothing). compare.png, and inline SVG for the report.
/// </summary>
internal static class ComparisonChart
{
    /// <summary>Draws the chart into a PNG file.</summary>
    public static void WritePng(string path, ComparisonSummary summary, int width = 900, int height = 560) =>
        Build(summary).SavePng(path, width, height);

    /// <summary>The chart as an SVG document (for inline use in HTML).</summary>
    public static string Svg(ComparisonSummary summary, int width = 900, int height = 560) => Build(summary).GetSvgXml(width, height);

    private static Plot Build(ComparisonSummary summary)
    {
        string metric = summary.Metric;
        var plot = new Plot();
        plot.Title($"{metric} against train time per epoch");
        plot.XLabel("train time per epoch (s, log scale)");
        plot.YLabel("eval " + metric + (summary.Strategies.Any(s => s.Runs.Count > 1) ? " (mean ± std over seeds)" : ""));

        var points = summary.Strategies.Select((s, i) => (Summary: s, Index: i, Mean: s.Mean(metric), Std: s.Std(metric) ?? 0))
            .Where(p => p.Mean is not null).ToList();
        foreach (var (s, index, mean, std) in points)
        {
            bool winner = index == summary.WinnerIndex;
            bool tie = summary.IsTie && (index == summary.BestIndex || index == summary.RunnerUpIndex);
            double x = Math.Log10(Math.Max(1e-6, s.SecondsPerEpoch));
            var color = winner ? Colors.OrangeRed : tie ? Colors.DarkOrange : Colors.SteelBlue;
            if (std > 0)
            {
                var bar = plot.Add.ErrorBar([x], [mean!.Value], [std]);
                bar.Color = color;
                bar.LineWidth = 2;
            }
            var marker = plot.Add.Marker(x, mean!.Value);
            marker.MarkerSize = winner ? 16 : 10;
            marker.MarkerShape = winner ? MarkerShape.FilledDiamond : MarkerShape.FilledCircle;
            marker.Color = color;
            string text = s.Strategy + (winner ? " (best)" : tie ? " (tie)" : "") + (summary.Recommendation?.Strategy == s.Strategy ? " ← recommended" : "");
            var label = plot.Add.Text(text, x, mean.Value);
            label.LabelFontSize = 14;
            label.LabelBold = winner || summary.Recommendation?.Strategy == s.Strategy;
            label.OffsetX = 8;
            label.OffsetY = -8;
        }

        // Seconds on a log axis: ticks at powers of ten, labelled in seconds.
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = value => Math.Pow(10, value) is var seconds && seconds >= 1
                ? seconds.ToString("#,0", CultureInfo.InvariantCulture) : seconds.ToString("0.###", CultureInfo.InvariantCulture),
        };
        if (points.Count > 0)
        {
            double minX = points.Min(p => Math.Log10(Math.Max(1e-6, p.Summary.SecondsPerEpoch)));
            double maxX = points.Max(p => Math.Log10(Math.Max(1e-6, p.Summary.SecondsPerEpoch)));
            double span = Math.Max(1, maxX - minX);
            plot.Axes.SetLimitsX(Math.Floor(minX - 0.1 * span), maxX + 0.45 * span); // room for the labels right of the points
            double low = points.Min(p => p.Mean!.Value - p.Std), high = points.Max(p => p.Mean!.Value + p.Std);
            if (MetricNames.HigherIsBetter(metric) && low >= 0 && high <= 1)
                plot.Axes.SetLimitsY(Math.Max(0, low - 0.05), Math.Min(1.02, high + 0.03));
            else
            {
                double pad = Math.Max(1e-3, (high - low) * 0.15);
                plot.Axes.SetLimitsY(low - pad, high + pad);
            }
        }
        return plot;
    }
}
