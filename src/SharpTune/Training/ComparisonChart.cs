using ScottPlot;

namespace SharpTune.Training;

/// <summary>compare.png: each strategy's metric against its train time, one labelled point per strategy.</summary>
internal static class ComparisonChart
{
    /// <summary>Draws the chart of <paramref name="rows"/> into <paramref name="path"/>; the best row is drawn larger and labelled "(best)".</summary>
    public static void Write(string path, IReadOnlyList<ComparisonRow> rows, string metric, int? best, int width = 900, int height = 560)
    {
        var plot = new Plot();
        plot.Title($"{metric} against train time, per strategy");
        plot.XLabel("train time (s)");
        plot.YLabel("eval " + metric);

        var points = rows.Select((r, i) => (Row: r, Index: i, Value: r.Metric(metric))).Where(p => p.Value is not null).ToList();
        foreach (var (row, index, value) in points)
        {
            bool isBest = index == best;
            var marker = plot.Add.Marker(row.TrainSeconds, value!.Value);
            marker.MarkerSize = isBest ? 16 : 10;
            marker.MarkerShape = isBest ? MarkerShape.FilledDiamond : MarkerShape.FilledCircle;
            marker.Color = isBest ? Colors.OrangeRed : Colors.SteelBlue;
            var label = plot.Add.Text(isBest ? row.Strategy + " (best)" : row.Strategy, row.TrainSeconds, value.Value);
            label.LabelFontSize = 14;
            label.LabelBold = isBest;
            label.OffsetX = 8;
            label.OffsetY = -8;
        }

        if (points.Count > 0)
        {
            // Room for the labels right of the rightmost point; metrics in [0, 1] keep a fixed scale, losses their own.
            double maxX = points.Max(p => p.Row.TrainSeconds);
            plot.Axes.SetLimitsX(0, Math.Max(1e-3, maxX) * 1.3);
            double low = points.Min(p => p.Value!.Value), high = points.Max(p => p.Value!.Value);
            if (MetricNames.HigherIsBetter(metric) && low >= 0 && high <= 1)
                plot.Axes.SetLimitsY(Math.Max(0, low - 0.1), 1.02);
            else
            {
                double pad = Math.Max(1e-3, (high - low) * 0.15);
                plot.Axes.SetLimitsY(low - pad, high + pad);
            }
        }
        plot.SavePng(path, width, height);
    }
}
