using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PuppeteerSharp;
using SharpTune.Training;

namespace SharpTune.Tests.Cli;

/// <summary>A fact that needs Debian's chromium (.ci/run installs it); without it the test is skipped, not passed.</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    /// <summary>Where Debian's chromium package puts the browser; CHROMIUM overrides it.</summary>
    public static string Executable => Environment.GetEnvironmentVariable("CHROMIUM") ?? "/usr/bin/chromium";

    public ChromiumFactAttribute()
    {
        if (!File.Exists(Executable)) Skip = $"{Executable} not found: install Debian's chromium package (apt-get install chromium) to render the report.";
    }
}

/// <summary>sharptune report: one self-contained HTML page of a run or a comparison, checked in a real browser.</summary>
public sealed class ReportTests : IClassFixture<ReportTests.Comparison>
{
    /// <summary>One small comparison (frozen and bitfit, two seeds, 3 steps each) shared by the tests.</summary>
    public sealed class Comparison : IDisposable
    {
        public Comparison()
        {
            var (exit, output) = TrainCliHarness.Run("compare", "--model", Cli.ModelDirectory, "--train", Cli.TrainFile, "--eval", Cli.EvalFile,
                "--strategies", "frozen,bitfit", "--budget", "steps", "--steps", "3", "--seeds", "2", "--batch-size", "8", "--out", Directory);
            Assert.True(exit == 0, output);
        }

        public TrainCliHarness Cli { get; } = new();
        public string Directory => Cli.PathOf("compare");
        public void Dispose() => Cli.Dispose();
    }

    private readonly Comparison comparison;

    public ReportTests(Comparison comparison) => this.comparison = comparison;

    [Fact]
    public void Report_of_a_comparison_holds_every_part_inline()
    {
        var (exit, output) = TrainCliHarness.Run("report", comparison.Directory);

        Assert.True(exit == 0, output);
        string path = Path.Combine(comparison.Directory, HtmlReport.FileName);
        string html = File.ReadAllText(path);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(comparison.Directory, "compare.json")))!;
        Assert.Contains(System.Net.WebUtility.HtmlEncode(json["verdict"]!.GetValue<string>()), html);
        Assert.Contains(System.Net.WebUtility.HtmlEncode(json["recommendation"]!["text"]!.GetValue<string>()), html);
        Assert.Single(Regex.Matches(html, "<figure class=\"chart comparison-chart\"><svg"));
        Assert.Equal(4, Regex.Matches(html, "<figure class=\"chart training-chart\"><svg").Count); // one per run
        Assert.Equal(4, Regex.Matches(html, "<table class=\"confusion\">").Count);
        Assert.Equal(4, Regex.Matches(html, "<th[^>]*>trainable tensors</th>").Count); // the audit table of each run
        Assert.Matches("<th[^>]*>learning rate</th>", html); // the parameter table
        Assert.Contains("<td>", html);
        // Self-contained: nothing is loaded from anywhere.
        Assert.DoesNotMatch("(src|href)=\"(?!#)", html);
        Assert.DoesNotContain("<script", html);
        // The confusion matrix of a run equals its evaluation.json.
        var evaluation = JsonNode.Parse(File.ReadAllText(Path.Combine(comparison.Directory, "frozen", "seed-42", "evaluation.json")))!;
        var matrix = evaluation["confusion_matrix"]!["rows_gold_columns_predicted"]!.AsArray();
        int correct = matrix.Select((row, i) => row![i]!.GetValue<int>()).Sum();
        int total = matrix.SelectMany(row => row!.AsArray()).Sum(v => v!.GetValue<int>());
        Assert.Equal(evaluation["metrics"]!["accuracy"]!.GetValue<double>(), (double)correct / total, 12);
    }

    [Fact]
    public void Report_of_a_train_run_directory()
    {
        string page = comparison.Cli.PathOf("run-report.html");
        var (exit, output) = TrainCliHarness.Run("report", comparison.Cli.TrainedRun, "--out", page);

        Assert.True(exit == 0, output);
        string html = File.ReadAllText(page);
        Assert.Single(Regex.Matches(html, "<figure class=\"chart training-chart\"><svg"));
        Assert.Contains("<table class=\"confusion\">", html);
        Assert.Contains("<table class=\"per-class\">", html);
        Assert.Contains("PASSED", html); // the audit's verdict
    }

    [Fact]
    public void Report_names_a_directory_that_is_neither()
    {
        string empty = Directory.CreateDirectory(comparison.Cli.PathOf("empty")).FullName;

        var (exit, output) = TrainCliHarness.Run("report", empty);

        Assert.Equal(1, exit);
        Assert.Contains($"{empty}: neither a comparison (compare.json) nor a run directory (metrics.jsonl)", output);
    }

    [ChromiumFact]
    public async Task Report_renders_in_headless_chromium_with_charts_drawn_and_no_console_errors()
    {
        string path = HtmlReport.Write(comparison.Directory);
        var launch = new LaunchOptions
        {
            Headless = true, ExecutablePath = ChromiumFactAttribute.Executable, Timeout = 180_000,
            // CI runs as root, where chromium's sandbox cannot start; the page is our own file.
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        };
        await using IBrowser browser = await Puppeteer.LaunchAsync(launch);
        await using IPage page = await browser.NewPageAsync();
        page.DefaultTimeout = 180_000;
        var problems = new List<string>();
        var requests = new List<string>();
        page.Console += (_, e) => { if (e.Message.Type is ConsoleType.Error or ConsoleType.Warning) problems.Add($"console {e.Message.Type}: {e.Message.Text}"); };
        page.PageError += (_, e) => problems.Add("page error: " + e.Message);
        page.RequestFailed += (_, e) => problems.Add("request failed: " + e.Request.Url);
        page.Request += (_, e) => requests.Add(e.Request.Url);

        IResponse response = await page.GoToAsync(new Uri(path).AbsoluteUri, WaitUntilNavigation.Load);

        Assert.True(response.Ok, $"status {response.Status}");
        Assert.Empty(problems);
        Assert.Equal([new Uri(path).AbsoluteUri], requests); // the page alone: no fonts, scripts or images fetched
        // Every chart is laid out at a real size and made of drawn shapes, labelled with the strategies.
        var charts = await page.EvaluateExpressionAsync<ChartBox[]>("""
            [...document.querySelectorAll('figure.chart svg')].map(svg => {
              const box = svg.getBoundingClientRect();
              return { kind: svg.parentElement.className, width: box.width, height: box.height,
                       shapes: svg.querySelectorAll('path, line, polyline, polygon, rect, circle, ellipse').length,
                       text: svg.textContent };
            })
            """);
        Assert.Equal(5, charts.Length);
        Assert.All(charts, c => Assert.True(c.Width > 300 && c.Height > 150 && c.Shapes > 10, $"{c.Kind}: {c.Width}×{c.Height}, {c.Shapes} shapes"));
        ChartBox summary = Assert.Single(charts, c => c.Kind.Contains("comparison-chart"));
        Assert.Contains("frozen", summary.Text);
        Assert.Contains("bitfit", summary.Text);
        // The tables are laid out too: the confusion matrices have their cells.
        int confusionCells = await page.EvaluateExpressionAsync<int>("document.querySelectorAll('table.confusion td').length");
        Assert.Equal(4 * 4, confusionCells); // four runs, two labels
    }

    public sealed record ChartBox(string Kind, double Width, double Height, int Shapes, string Text);
}
