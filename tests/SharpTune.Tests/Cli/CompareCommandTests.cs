using System.Text.Json.Nodes;
using SharpTune.Cli.Commands;
using SharpTune.Data;
using SharpTune.Strategies;
using SharpTune.Training;

namespace SharpTune.Tests.Cli;

public sealed class CompareCommandTests : IDisposable
{
    private static readonly string[] Strategies = ["frozen", "top:1", "bitfit", "lora", "full"];
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    private static JsonNode ReadJson(string path) => JsonNode.Parse(File.ReadAllText(path))!;

    /// <summary>Trainable parameters of a fresh tiny classifier under <paramref name="strategy"/>, counted from requires_grad.</summary>
    private (long Trainable, long Head) CountFresh(string strategy)
    {
        using var classifier = TextClassifier.Create(cli.ModelDirectory, "mean", LabelSet.FromNames(["no", "yes"]), maxLength: 64);
        TrainingPlan plan = StrategyApplier.Apply(classifier.Model, Strategy.Parse(strategy));
        long counted = classifier.Model.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        Assert.Equal(plan.TrainableParameters, counted);
        return (counted, classifier.Model.Head.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void Compare_runs_every_strategy_in_order_and_writes_json_markdown_and_chart()
    {
        string output = cli.PathOf("compare");
        var (exit, text) = TrainCliHarness.Run("compare", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--eval", cli.EvalFile,
            "--strategies", string.Join(',', Strategies), "--epochs", "1", "--batch-size", "8", "--train-limit", "24", "--eval-limit", "12",
            "--out", output);

        Assert.True(exit == 0, text);
        // The table: five rows in the order given.
        string[] tableRows = text.Split('\n').SkipWhile(l => !l.Contains("Strategies compared"))
            .SkipWhile(l => !l.StartsWith('├')).TakeWhile(l => !l.StartsWith('╰')).Where(l => l.StartsWith('│')).ToArray(); // rows below the header
        Assert.Equal(5, tableRows.Length);
        string[] names = tableRows.Select(r => r.Split('│', StringSplitOptions.TrimEntries)[1].TrimStart('★', '=', ' ')).ToArray();
        Assert.Equal(["frozen", "top:1", "bitfit", "lora:r=8,alpha=16", "full"], names);

        foreach (string file in new[] { "compare.json", "compare.md", "compare.png" })
            Assert.True(File.Exists(Path.Combine(output, file)), file + " missing");
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, File.ReadAllBytes(Path.Combine(output, "compare.png"))[..4]);
        var json = ReadJson(Path.Combine(output, "compare.json"));
        Assert.Null(json["stopped"]);
        Assert.Equal("macro_f1", json["metric"]!.GetValue<string>());
        Assert.Equal(24, json["inputs"]!["train_examples"]!.GetValue<int>());
        var rows = json["rows"]!.AsArray();
        Assert.Equal(5, rows.Count);
        var summary = json["summary"]!.AsArray();
        Assert.Single(summary, r => r!["best"]!.GetValue<bool>());
        // ★ in the table exactly when compare.json names a winner; otherwise the two best say "tie" — and the verdict says which.
        string? winner = json["winner"]?.GetValue<string>();
        if (winner is null) Assert.Equal(2, tableRows.Count(r => r.Contains("│ = ")));
        else Assert.Contains("★ " + winner, Assert.Single(tableRows, r => r.Contains('★')));
        static string Words(string s) => string.Join(' ', s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)); // the console wraps long lines
        Assert.Contains(Words(json["verdict"]!.GetValue<string>()), Words(text));
        Assert.Contains(Words(json["recommendation"]!["text"]!.GetValue<string>()), Words(text));

        var head = CountFresh("frozen").Head;
        for (int i = 0; i < Strategies.Length; i++)
        {
            var row = rows[i]!;
            Assert.Equal(CountFresh(Strategies[i]).Trainable, row["trainable_parameters"]!.GetValue<long>());
            Assert.True(row["audit_passed"]!.GetValue<bool>(), Strategies[i]);
            Assert.Equal(Strategy.Parse(Strategies[i]).DefaultLearningRate, row["lr"]!.GetValue<double>());
            Assert.InRange(row["metrics"]!["accuracy"]!.GetValue<double>(), 0, 1);
            Assert.True(row["peak_rss_bytes"]!.GetValue<long>() > 0);
            // Each run is saved like `train` saves one.
            string run = row["run_directory"]!.GetValue<string>();
            foreach (string file in new[] { "model.safetensors", "sharptune.json", "parameters.md", "metrics.jsonl", "audit.md", "summary.json", "training.png" })
                Assert.True(File.Exists(Path.Combine(run, file)), $"{run}/{file} missing");
        }
        Assert.Equal(head, rows[0]!["trainable_parameters"]!.GetValue<long>()); // frozen: only the head trains
        Assert.Equal(Path.Combine(output, "lora-r-8-alpha-16"), rows[3]!["run_directory"]!.GetValue<string>());

        string markdown = File.ReadAllText(Path.Combine(output, "compare.md"));
        Assert.Contains("sharptune compare --model", markdown);
        Assert.Contains("| strategy | runs | lr |", markdown);
        Assert.Contains(json["verdict"]!.GetValue<string>(), markdown);
        Assert.Single(markdown.Split('\n'), l => l.Contains("← recommended"));
    }

    [Fact]
    public void Cancelling_during_the_second_strategy_keeps_the_first_row()
    {
        string output = cli.PathOf("cancelled");
        var options = new ComparisonOptions
        {
            Strategies = [new FrozenStrategy(), new BitFitStrategy(), new FullStrategy()],
            ModelDirectory = cli.ModelDirectory, MaxLength = 64,
            Training = new TrainingOptions { Epochs = 1, BatchSize = 8 },
        };
        using var stop = new CancellationTokenSource();
        var progress = new Listener(e => { if (e is StrategyStartedEvent { Index: 1 }) stop.Cancel(); });
        var train = TinyModels.ToyTexts(16, seed: 1);
        var eval = TinyModels.ToyTexts(8, seed: 2);

        var result = new StrategyComparison(output, options).Run(train, eval, LabelSet.FromTraining(train), progress, stop.Token);

        Assert.Equal("cancelled during bitfit", result.Stopped);
        Assert.Equal("frozen", Assert.Single(result.Rows).Strategy);
        var json = ReadJson(Path.Combine(output, "compare.json"));
        Assert.Equal("frozen", Assert.Single(json["rows"]!.AsArray())!["strategy"]!.GetValue<string>());
        Assert.Equal("cancelled during bitfit", json["stopped"]!.GetValue<string>());
        Assert.Contains("**Stopped:** cancelled during bitfit", File.ReadAllText(Path.Combine(output, "compare.md")));
        Assert.True(File.Exists(Path.Combine(output, "compare.png")));
        Assert.False(File.Exists(Path.Combine(output, "bitfit", "model.safetensors"))); // the cancelled run is not saved
        Assert.False(Directory.Exists(Path.Combine(output, "full")));
    }

    [Fact]
    public void A_frozen_row_whose_features_came_from_the_disk_cache_says_so()
    {
        string[] Args(string output) => ["compare", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--eval", cli.EvalFile,
            "--strategies", "frozen", "--epochs", "1", "--batch-size", "8", "--out", output];
        var (firstExit, first) = TrainCliHarness.Run(Args(cli.PathOf("compare-first")));
        Assert.True(firstExit == 0, first);
        var (secondExit, second) = TrainCliHarness.Run(Args(cli.PathOf("compare-second")));
        Assert.True(secondExit == 0, second);
        var row = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(cli.PathOf("compare-second"), "compare.json")))!["rows"]![0]!;
        Assert.Equal("disk", row["feature_source"]!.GetValue<string>());
        Assert.Contains("(features from disk cache)", File.ReadAllText(Path.Combine(cli.PathOf("compare-second"), "compare.md")));
    }

    [Fact]
    public void Strategy_list_keeps_lora_options_with_their_entry()
    {
        var strategies = CompareCommand.ParseStrategies("frozen, lora:r=4,alpha=8,full");

        Assert.Equal(["frozen", "lora:r=4,alpha=8", "full"], strategies.Select(s => s.Name));
    }

    [Fact]
    public void Compare_rejects_a_metric_the_task_does_not_compute()
    {
        var (exit, output) = TrainCliHarness.Run("compare", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--eval", cli.EvalFile,
            "--metric", "pearson", "--out", cli.PathOf("bad-metric"));

        Assert.Equal(1, exit);
        Assert.Contains("--metric 'pearson' is not computed for the single task; allowed: accuracy, macro_f1, mcc, loss", output);
    }

    [Fact]
    public void Demo_help_describes_its_options()
    {
        var (exit, output) = TrainCliHarness.Run("demo", "--help");

        Assert.Equal(0, exit);
        Assert.Contains("--data", output);
        Assert.Contains("--seconds", output);
        Assert.Contains("--seeds", output);
        Assert.Contains("runs/demo", output);
    }

    [Fact]
    public void Demo_names_the_missing_files_of_a_data_directory()
    {
        string missing = cli.PathOf("no-such-sample");
        var (exit, output) = TrainCliHarness.Run("demo", "--data", missing, "--out", cli.PathOf("demo"));

        Assert.Equal(1, exit);
        Assert.Contains("no-such-sample", output);
        Assert.Contains("missing train.csv and dev.csv", output);
    }

    [Fact]
    public void Demo_data_is_found_walking_up_or_the_error_lists_where_it_looked()
    {
        string repo = cli.PathOf("repo");
        string sample = Path.Combine(repo, "data", "spam-sample");
        Directory.CreateDirectory(sample);
        File.WriteAllText(Path.Combine(sample, "train.csv"), "text,label\n");
        string nested = Directory.CreateDirectory(Path.Combine(repo, "src", "bin", "Release")).FullName;
        string elsewhere = Directory.CreateDirectory(cli.PathOf("elsewhere")).FullName;

        Assert.Equal(sample, DemoCommand.FindData(null, elsewhere, nested));
        var error = Assert.Throws<SharpTuneException>(() => DemoCommand.FindData(null, elsewhere));
        Assert.Contains(Path.Combine(elsewhere, "data", "spam-sample"), error.Message);
        Assert.Contains("--data DIR", error.Message);
    }

    [Fact]
    public void Best_strategy_is_the_highest_mean_score_or_the_lowest_mean_loss()
    {
        ComparisonRow Row(string name, double f1, double loss) => new(name, 1e-3, 1, 10, 10, 1, 1, null, false, null, null,
            new Dictionary<string, double> { ["macro_f1"] = f1, ["loss"] = loss }, 1, true, false, name);
        ComparisonRow[] rows = [Row("a", 0.7, 0.3), Row("b", 0.9, 0.5), Row("c", 0.8, 0.2), Row("a", 0.95, 0.3)];
        ComparisonSummary Summary(string metric) => ComparisonSummary.Compute(rows, rows.Select(_ => Array.Empty<float[]>()).ToList(), null, metric);

        Assert.Equal((1, 0), (Summary("macro_f1").BestIndex!.Value, Summary("macro_f1").RunnerUpIndex!.Value)); // b 0.9, a (0.7 + 0.95) / 2
        Assert.Equal(2, Summary("loss").BestIndex);
        Assert.Null(Summary("accuracy").BestIndex);
    }

    private static ComparisonResult TwoRows()
    {
        ComparisonRow Row(string name, long trainable) => new(name, 5e-4, trainable, 22_713_986, 100.0 * trainable / 22_713_986, 258.4, 2.3,
            1_800_000_000, true, null, null, new Dictionary<string, double> { ["accuracy"] = 0.91, ["macro_f1"] = 0.8974, ["loss"] = 0.2048 }, 2, true, false, name,
            EpochsTrained: 2.5, Steps: 320);
        ComparisonRow[] rows = [Row("lora:r=8,alpha=16", 74_498), Row("full", 22_566_146)];
        return new ComparisonResult(rows, ComparisonSummary.Compute(rows, [[], []], null, "macro_f1"), null, "compare.json", "compare.md", null);
    }

    [Fact]
    public void Each_half_of_the_table_fits_an_80_column_terminal_without_cut_cells()
    {
        var (console, writer) = TrainCliHarness.Console();
        console.Profile.Width = 80;

        console.Write(CompareCommand.Table(TwoRows(), quality: false));
        console.Write(CompareCommand.Table(TwoRows(), cost: false));

        string text = writer.ToString();
        Assert.DoesNotContain("…", text);
        Assert.True(text.Split('\n').All(l => l.Length <= 80), text);
        Assert.Contains("74.5k 0.33%", text);
        Assert.Contains("22.6M 99.3%", text);
        Assert.Contains("1717 MiB", text);
        Assert.Contains("lora:r=8,alpha=16", text);
        Assert.Contains("0.897", text);
    }

    [Fact]
    public void Output_to_a_file_or_pipe_keeps_every_table_line_whole()
    {
        // What `sharptune compare … > log.txt` gets: without a terminal Spectre assumes 80 columns and wraps mid-number.
        var writer = new StringWriter();
        var console = SharpTune.Cli.CliApp.ConsoleFor(writer, redirected: true);

        console.Write(CompareCommand.Table(TwoRows()));

        string[] lines = writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] table = lines.Where(l => l.StartsWith('│') || l.StartsWith('╭') || l.StartsWith('├') || l.StartsWith('╰')).ToArray();
        Assert.Equal(6, table.Length); // top, header, rule, two rows, bottom: nothing wrapped onto extra lines
        Assert.True(table[0].Length > 80, $"{table[0].Length} columns");
        Assert.All(table, l => Assert.Equal(table[0].Length, l.Length));
        Assert.Contains(table, l => l.Contains("full") && l.Contains("22.6M 99.3%") && l.Contains("0.897"));
    }

    [Fact]
    public void Compare_format_json_prints_compare_json_alone()
    {
        string output = cli.PathOf("compare-json");
        var (exit, text) = TrainCliHarness.Run("compare", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--eval", cli.EvalFile,
            "--strategies", "frozen,bitfit", "--budget", "steps", "--steps", "2", "--seeds", "2", "--batch-size", "8", "--format", "json", "--out", output);

        Assert.True(exit == 0, text);
        var printed = JsonNode.Parse(text)!; // the whole standard output is one JSON document
        Assert.Equal(File.ReadAllText(Path.Combine(output, "compare.json")).Trim(), printed.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }).Trim());
        Assert.Equal(4, printed["rows"]!.AsArray().Count);
        Assert.Equal("steps", printed["options"]!["budget"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("--budget", "hours", "--budget must be epochs, time or steps, got 'hours'")]
    [InlineData("--strategy-epochs", "frozen30", "--strategy-epochs: 'frozen30' is not NAME=EPOCHS")]
    [InlineData("--seconds", "20", "--seconds applies to --budget time only")]
    [InlineData("--format", "xml", "--format must be json or table")]
    public void Compare_rejects_bad_budget_options_naming_the_flag(string flag, string value, string message)
    {
        var (exit, output) = TrainCliHarness.Run("compare", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--eval", cli.EvalFile,
            flag, value, "--out", cli.PathOf("bad-" + flag.TrimStart('-')));

        Assert.Equal(1, exit);
        Assert.Contains(message, output);
        Assert.False(Directory.Exists(cli.PathOf("bad-" + flag.TrimStart('-'))));
    }

    private sealed class Listener(Action<ComparisonEvent> action) : IProgress<ComparisonEvent>
    {
        public void Report(ComparisonEvent value) => action(value);
    }
}
