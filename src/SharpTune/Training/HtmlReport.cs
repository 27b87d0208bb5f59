using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Markdig;

namespace SharpTune.Training;

/// <summary>
/// One self-contained HTML page for a run directory (written by <c>train</c>) or a comparison directory (written by
/// <c>compare</c>): the parameter table, the freeze audit, the loss and metric curves, the per-class scores and the
/// confusion matrix of each run, and for a comparison the verdict, the recommendation, the table and the quality
/// against time-per-epoch chart with error bars. Charts are inline SVG drawn by ScottPlot (the same drawing as the
/// PNGs), tables are the run's own Markdown files rendered by Markdig, styles are inline: no script, no network,
/// nothing outside the file.
/// </summary>
public static class HtmlReport
{
    /// <summary>The report's file name, written into the directory by default.</summary>
    public const string FileName = "report.html";

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
    private static readonly MarkdownPipeline Markdown = new MarkdownPipelineBuilder().UsePipeTables().DisableHtml().Build();

    /// <summary>Writes the report of <paramref name="directory"/> to <paramref name="output"/> (default: report.html in it); returns its path.</summary>
    public static string Write(string directory, string? output = null)
    {
        string html = Render(directory);
        string path = output ?? Path.Combine(directory, FileName);
        AtomicFile.WriteText(path, html);
        return path;
    }

    /// <summary>The report of a run or comparison directory as HTML.</summary>
    public static string Render(string directory)
    {
        if (File.Exists(directory)) throw new SharpTuneException($"{directory}: is a file; give a run or comparison directory.");
        if (!Directory.Exists(directory)) throw new SharpTuneException($"{directory}: directory not found.");
        if (File.Exists(Path.Combine(directory, StrategyComparison.JsonFile))) return Comparison(directory);
        if (File.Exists(Path.Combine(directory, RunRecorder.MetricsFile)))
            return Page("SharpTune run " + Path.GetFileName(Path.GetFullPath(directory)), Run(directory, "Run " + Path.GetFullPath(directory), 1));
        throw new SharpTuneException($"{directory}: neither a comparison ({StrategyComparison.JsonFile}) nor a run directory ({RunRecorder.MetricsFile}).");
    }

    private static string Comparison(string directory)
    {
        ComparisonResult result = StrategyComparison.Load(directory);
        ComparisonSummary summary = result.Summary;
        var body = new StringBuilder();
        body.Append("<h1>Strategy comparison</h1>\n");
        body.Append("<p class=\"verdict\">").Append(Encode(summary.Verdict)).Append("</p>\n");
        if (summary.Recommendation is { } recommendation)
            body.Append("<p class=\"recommendation\"><strong>").Append(Encode(recommendation.Text)).Append("</strong></p>\n");
        if (result.Stopped is not null) body.Append("<p class=\"stopped\">Stopped: ").Append(Encode(result.Stopped)).Append("; the runs below finished.</p>\n");
        if (result.Rows.Count > 0)
            body.Append(Figure("comparison-chart", ComparisonChart.Svg(summary),
                $"{summary.Metric} (mean ± one standard deviation over the seeds) against the train time per epoch; ★/best: beats the runner-up beyond the noise."));
        body.Append("<section class=\"markdown\">").Append(MarkdownFile(result.MarkdownPath)).Append("</section>\n");

        body.Append("<h2>Runs</h2>\n");
        var first = new HashSet<string>(StringComparer.Ordinal);
        foreach (ComparisonRow row in result.Rows)
        {
            string title = $"{row.Strategy}, seed {row.Seed}";
            bool open = first.Add(row.Strategy); // the first seed of each strategy open, the others folded
            body.Append(open ? "<details open>" : "<details>").Append("<summary>").Append(Encode(title)).Append("</summary>\n");
            body.Append(Directory.Exists(row.RunDirectory) ? Run(row.RunDirectory, title, 3)
                : $"<p class=\"missing\">Run directory {Encode(row.RunDirectory)} not found.</p>");
            body.Append("</details>\n");
        }
        return Page("SharpTune comparison " + Path.GetFileName(Path.GetFullPath(directory)), body.ToString());
    }

    /// <summary>A run's section: figures, parameter table, audit, curves, per-class scores and confusion matrix.</summary>
    private static string Run(string directory, string title, int level)
    {
        var html = new StringBuilder();
        html.Append("<section class=\"run\">\n");
        html.Append(Invariant, $"<h{level}>{Encode(title)}</h{level}>\n");

        string summaryPath = Path.Combine(directory, RunRecorder.SummaryFile);
        if (File.Exists(summaryPath))
        {
            JsonObject summary = StrictJson.ReadObject(summaryPath);
            var facts = new List<string>();
            if (summary["strategy"] is JsonValue strategy) facts.Add("strategy " + strategy);
            if (summary["train_seconds"] is JsonValue seconds) facts.Add(string.Create(Invariant, $"{seconds.GetValue<double>():F1} s of training"));
            if (summary["samples_per_second"] is JsonValue speed) facts.Add(string.Create(Invariant, $"{speed.GetValue<double>():F1} samples/s"));
            if (summary["stopped"] is JsonValue stopped) facts.Add("ended by " + stopped);
            if (summary["audit_summary"] is JsonValue verdict) facts.Add("audit " + verdict);
            html.Append("<p class=\"facts\">").Append(Encode(string.Join("; ", facts).TrimEnd('.'))).Append(".</p>\n");
        }
        string parameters = Path.Combine(directory, RunRecorder.ParametersMarkdown);
        if (File.Exists(parameters)) html.Append(Heading(level + 1, "Parameters")).Append(MarkdownFile(parameters));
        string audit = Path.Combine(directory, RunRecorder.AuditMarkdown);
        if (File.Exists(audit)) html.Append(Heading(level + 1, "Freeze audit")).Append(MarkdownFile(audit));

        var (steps, evaluations) = RunRecorder.ReadMetrics(directory);
        html.Append(Heading(level + 1, "Loss and metrics"));
        html.Append(Figure("training-chart", RunCharts.Svg(steps, evaluations),
            "Running train loss per step and eval loss (left axis); eval metrics per evaluation (right axis)."));

        string evaluation = Path.Combine(directory, RunRecorder.EvaluationFile);
        if (File.Exists(evaluation)) html.Append(EvaluationTables(evaluation, level + 1));
        else if (evaluations.LastOrDefault(e => e.IsBest) is { } best)
        {
            // A run recorded before evaluation.json existed: its per-class F1 is in metrics.jsonl.
            html.Append(Heading(level + 1, "Per class (F1)"));
            html.Append("<table class=\"per-class\"><thead><tr><th>label</th><th>F1</th></tr></thead><tbody>\n");
            foreach (var (name, value) in best.Metrics.Where(m => m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal)))
                html.Append(Invariant, $"<tr><td>{Encode(name[MetricNames.ClassF1Prefix.Length..])}</td><td>{value:F4}</td></tr>\n");
            html.Append("</tbody></table>\n");
        }
        html.Append("</section>\n");
        return html.ToString();
    }

    private static string EvaluationTables(string path, int level)
    {
        JsonObject json = StrictJson.ReadObject(path);
        var html = new StringBuilder();
        var headline = json["metrics"] as JsonObject ?? [];
        html.Append(Heading(level, "Best evaluation"));
        html.Append("<table class=\"metrics\"><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>\n");
        foreach (var (name, value) in headline.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal)))
            html.Append("<tr><td>").Append(Encode(name)).Append("</td><td>").Append(Number(value)).Append("</td></tr>\n");
        html.Append("</tbody></table>\n");
        if (json["per_class"] is JsonArray perClass)
        {
            html.Append(Heading(level, "Per class"));
            html.Append("<table class=\"per-class\"><thead><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr></thead><tbody>\n");
            foreach (JsonNode? c in perClass)
                html.Append("<tr><td>").Append(Encode(c?["label"]?.ToString() ?? "")).Append("</td><td>").Append(Number(c?["precision"]))
                    .Append("</td><td>").Append(Number(c?["recall"])).Append("</td><td>").Append(Number(c?["f1"]))
                    .Append("</td><td>").Append(Encode(c?["support"]?.ToString() ?? "")).Append("</td></tr>\n");
            html.Append("</tbody></table>\n");
        }
        if (json["confusion_matrix"] is JsonObject confusion && confusion["labels"] is JsonArray labels &&
            confusion["rows_gold_columns_predicted"] is JsonArray matrix)
        {
            html.Append(Heading(level, "Confusion matrix (rows: gold, columns: predicted)"));
            html.Append("<table class=\"confusion\"><thead><tr><th>gold \\ predicted</th>");
            foreach (JsonNode? label in labels) html.Append("<th>").Append(Encode(label?.ToString() ?? "")).Append("</th>");
            html.Append("</tr></thead><tbody>\n");
            for (int gold = 0; gold < matrix.Count; gold++)
            {
                html.Append("<tr><th>").Append(Encode(labels.ElementAtOrDefault(gold)?.ToString() ?? "")).Append("</th>");
                var cells = matrix[gold] as JsonArray ?? [];
                for (int predicted = 0; predicted < cells.Count; predicted++)
                    html.Append(predicted == gold ? "<td class=\"diagonal\">" : "<td>").Append(Encode(cells[predicted]?.ToString() ?? "")).Append("</td>");
                html.Append("</tr>\n");
            }
            html.Append("</tbody></table>\n");
        }
        return html.ToString();
    }

    private static string Number(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue(out double number) ? number.ToString("F4", Invariant) : "–";

    private static string Heading(int level, string text) => string.Create(Invariant, $"<h{Math.Min(6, level)}>{Encode(text)}</h{Math.Min(6, level)}>\n");

    /// <summary>A Markdown file of the run (parameters.md, audit.md, compare.md) as HTML, its top-level title dropped (the section has one).</summary>
    private static string MarkdownFile(string path)
    {
        if (!File.Exists(path)) return $"<p class=\"missing\">{Encode(Path.GetFileName(path))} not found.</p>\n";
        string text = File.ReadAllText(path);
        if (text.StartsWith("# ", StringComparison.Ordinal)) text = text[(text.IndexOf('\n') + 1)..];
        return Markdig.Markdown.ToHtml(text, Markdown);
    }

    private static string Figure(string kind, string svg, string caption)
    {
        int start = svg.IndexOf("<svg", StringComparison.Ordinal);
        return $"<figure class=\"chart {kind}\">{(start < 0 ? svg : svg[start..])}<figcaption>{Encode(caption)}</figcaption></figure>\n";
    }

    private static string Encode(string text) => WebUtility.HtmlEncode(text);

    private static string Page(string title, string body) => $$"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{Encode(title)}}</title>
        <style>
        body { font-family: system-ui, "DejaVu Sans", sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1d1d1f; }
        h1 { font-size: 1.6rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
        table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
        th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.55rem; white-space: nowrap; }
        td { text-align: right; } td:first-child { text-align: left; }
        thead th { background: #f3f4f6; }
        td.diagonal { background: #e6f4ea; font-weight: bold; }
        .verdict { font-size: 1.05rem; } .recommendation { font-size: 1.1rem; background: #fff7e6; padding: 0.6rem; border-left: 4px solid #f59e0b; }
        figure.chart { margin: 1rem 0; } figure.chart svg { max-width: 100%; height: auto; border: 1px solid #eee; }
        figcaption { color: #555; font-size: 0.85rem; }
        details { margin: 0.6rem 0; } summary { cursor: pointer; font-weight: bold; font-size: 1.1rem; }
        pre { background: #f6f8fa; padding: 0.6rem; overflow-x: auto; }
        .markdown table { display: block; overflow-x: auto; }
        </style>
        </head>
        <body>
        {{body}}
        </body>
        </html>
        """;
}
