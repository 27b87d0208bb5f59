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
        // The table: five rows in the order given, the best one starred.
        string[] tableRows = text.Split('\n').SkipWhile(l => !l.Contains("Strategies compared"))
            .SkipWhile(l => !l.StartsWith('├')).Where(l => l.StartsWith('│')).ToArray(); // rows below the header
        Assert.Equal(5, tableRows.Length);
        string[] names = tableRows.Select(r => r.Split('│', StringSplitOptions.TrimEntries)[1].TrimStart('★', ' ')).ToArray();
        Assert.Equal(["frozen", "top:1", "bitfit", "lora:r=8,alpha=16", "full"], names);
        Assert.Single(tableRows, r => r.Contains('★'));

        foreach (string file in new[] { "compare.json", "compare.md", "compare.png" })
            Assert.True(File.Exists(Path.Combine(output, file)), file + " missing");
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, File.ReadAllBytes(Path.Combine(output, "compare.png"))[..4]);
        var json = ReadJson(Path.Combine(output, "compare.json"));
        Assert.Null(json["stopped"]);
        Assert.Equal("macro_f1", json["metric"]!.GetValue<string>());
        Assert.Equal(24, json["inputs"]!["train_examples"]!.GetValue<int>());
        var rows = json["rows"]!.AsArray();
        Assert.Equal(5, rows.Count);
        Assert.Single(rows, r => r!["best"]!.GetValue<bool>());

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
        Assert.Contains("| strategy | lr |", markdown);
        Assert.Single(markdown.Split('\n'), l => l.Contains('★') && l.StartsWith("| **"));
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
    public void Best_row_is_the_highest_score_or_the_lowest_loss()
    {
        ComparisonRow Row(string name, double f1, double loss) => new(name, 1e-3, 1, 10, 10, 1, 1, null, false, null, null,
            new Dictionary<string, double> { ["macro_f1"] = f1, ["loss"] = loss }, 1, true, false, name);
        var rows = new[] { Row("a", 0.7, 0.3), Row("b", 0.9, 0.5), Row("c", 0.8, 0.2) };

        Assert.Equal(1, StrategyComparison.BestIndex(rows, "macro_f1"));
        Assert.Equal(2, StrategyComparison.BestIndex(rows, "loss"));
        Assert.Null(StrategyComparison.BestIndex(rows, "accuracy"));
    }

    [Fact]
    public void Each_half_of_the_table_fits_an_80_column_terminal_without_cut_cells()
    {
        ComparisonRow Row(string name, long trainable) => new(name, 5e-4, trainable, 22_713_986, 100.0 * trainable / 22_713_986, 258.4, 2.3,
            1_800_000_000, true, null, null, new Dictionary<string, double> { ["accuracy"] = 0.91, ["macro_f1"] = 0.8974, ["loss"] = 0.2048 }, 2, true, false, name);
        var result = new ComparisonResult([Row("lora:r=8,alpha=16", 74_498), Row("full", 22_566_146)], "macro_f1", 1, null, "compare.json", "compare.md", null);
        var (console, writer) = TrainCliHarness.Console();
        console.Profile.Width = 80;

        console.Write(CompareCommand.Table(result, quality: false));
        console.Write(CompareCommand.Table(result, cost: false));

        string text = writer.ToString();
        Assert.DoesNotContain("…", text);
        Assert.Contains("74.5k 0.33%", text);
        Assert.Contains("22.6M 99.3%", text);
        Assert.Contains("1717 MiB", text);
        Assert.Contains("★ full", text);
        Assert.Contains("0.897", text);
    }

    private sealed class Listener(Action<ComparisonEvent> action) : IProgress<ComparisonEvent>
    {
        public void Report(ComparisonEvent value) => action(value);
    }
}
