using System.Text.Json.Nodes;
using SharpTune.Training;

namespace SharpTune.Tests.Cli;

public sealed class TrainCommandTests : IDisposable
{
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    private static string[] Lines(string run, string file) => File.ReadAllLines(Path.Combine(run, file));

    [Fact]
    public void Train_frozen_writes_the_model_and_the_run_record()
    {
        string run = cli.TrainedRun; // frozen, 2 epochs, with eval data

        foreach (string file in new[] { "config.json", "model.safetensors", "vocab.txt", "sharptune.json", "parameters.md", "parameters.json",
                     "metrics.jsonl", "audit.md", "audit.json", "training.png", "summary.json" })
            Assert.True(File.Exists(Path.Combine(run, file)), $"{file} missing");
        Assert.Contains("PASSED", File.ReadAllText(Path.Combine(run, "audit.md")));
        Assert.Contains("Strategy: frozen", File.ReadAllText(Path.Combine(run, "parameters.md")));
        var evals = Lines(run, "metrics.jsonl").Select(l => JsonNode.Parse(l)!).Where(l => l["type"]!.GetValue<string>() == "eval").ToList();
        Assert.Equal(2, evals.Count);
        Assert.All(evals, e => Assert.InRange(e["accuracy"]!.GetValue<double>(), 0, 1));
        byte[] png = File.ReadAllBytes(Path.Combine(run, "training.png"));
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, png[..4]);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.True(summary["audit_passed"]!.GetValue<bool>());
        Assert.True(summary["used_feature_cache"]!.GetValue<bool>());
        Assert.Equal(48, summary["train_examples"]!.GetValue<int>());
        Assert.Equal("frozen", JsonNode.Parse(File.ReadAllText(Path.Combine(run, "sharptune.json")))!["strategy"]!.GetValue<string>());
    }

    [Fact]
    public void Train_full_prints_the_parameter_table_progress_evaluations_and_audit()
    {
        string run = cli.PathOf("full");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--eval", cli.EvalFile,
            "--strategy", "full", "--head", "cls", "--epochs", "1", "--batch-size", "8", "--eval-steps", "2", "--schedule", "cosine",
            "--log-steps", "1", "--out", run);

        Assert.True(exit == 0, output);
        Assert.Contains("95.00% trainable", output); // all but the pooler, which the cls head does not read
        Assert.Contains("epoch 1/1: step 6/6", output);
        Assert.Contains("eval epoch 1 step 2", output);
        Assert.Contains("Freeze audit: PASSED", output);
        Assert.Contains("Run directory", output);
        var lines = Lines(run, "metrics.jsonl").Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(6, lines.Count(l => l["type"]!.GetValue<string>() == "step"));
        Assert.Equal([2, 4, 6], lines.Where(l => l["type"]!.GetValue<string>() == "eval").Select(l => l["step"]!.GetValue<int>()));
        Assert.False(JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!["used_feature_cache"]!.GetValue<bool>());
    }

    [Fact]
    public void Train_without_eval_data_still_records_the_loss_and_the_audit()
    {
        string run = cli.PathOf("no-eval");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", cli.TrainFile,
            "--strategy", "bitfit", "--epochs", "1", "--batch-size", "16", "--out", run);

        Assert.True(exit == 0, output);
        Assert.Contains("PASSED", File.ReadAllText(Path.Combine(run, RunRecorder.AuditMarkdown)));
        Assert.All(Lines(run, RunRecorder.MetricsFile), l => Assert.Equal("step", JsonNode.Parse(l)!["type"]!.GetValue<string>()));
        Assert.True(File.Exists(Path.Combine(run, RunRecorder.ChartFile)));
    }

    [Fact]
    public void Train_on_a_live_terminal_draws_progress_bars()
    {
        string run = cli.PathOf("live");
        var (exit, output) = TrainCliHarness.RunOn(interactive: true, "train", "--model", cli.ModelDirectory, "--train", cli.TrainFile,
            "--eval", cli.EvalFile, "--strategy", "top:1", "--epochs", "2", "--batch-size", "16", "--out", run);

        Assert.True(exit == 0, output);
        Assert.Contains("samples/s", output);
        Assert.Contains("━", output); // the bar
        Assert.Contains("PASSED", output);
    }

    [Theory]
    [InlineData("train", "--layer-lr-decay")]
    [InlineData("evaluate", "--data")]
    [InlineData("predict", "--text-pair")]
    public void Help_lists_every_option(string command, string option)
    {
        // Option descriptions are Spectre markup: a stray bracket would make --help itself fail.
        var (exit, output) = TrainCliHarness.Run(command, "--help");
        Assert.True(exit == 0, output);
        Assert.Contains(option, output);
    }

    [Fact]
    public void A_missing_train_file_is_an_error_naming_it()
    {
        string missing = cli.PathOf("nope.csv");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", missing, "--out", cli.PathOf("r"));
        Assert.Equal(1, exit);
        Assert.Contains($"error: {missing}: --train file not found", output);
        Assert.False(Directory.Exists(cli.PathOf("r")));
    }

    [Theory]
    [InlineData("--out", "", "--out is required: the run directory to write.")]
    [InlineData("--out", " ", "--out is required: the run directory to write.")]
    [InlineData("--resume", "", "--resume must name the run directory to continue.")]
    public void An_empty_run_directory_is_an_error_naming_the_flag(string flag, string value, string message)
    {
        string[] args = flag == "--out" ? ["--model", cli.ModelDirectory, "--train", cli.TrainFile, "--out", value] : ["--train", cli.TrainFile, "--resume", value];
        var (exit, output) = TrainCliHarness.Run(["train", .. args]);
        Assert.Equal(1, exit);
        Assert.Contains($"error: {message}", output);
    }

    [Fact]
    public void An_eval_label_unseen_in_training_is_an_error_naming_file_and_line()
    {
        string eval = cli.Write("odd-eval.csv", "text,label\nw1 w2,yes\nw3 w4,maybe\n");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--eval", eval,
            "--out", cli.PathOf("r"));
        Assert.Equal(1, exit);
        Assert.Contains($"{eval}:3:", output);
        Assert.Contains("'maybe'", output);
    }

    [Fact]
    public void A_bad_strategy_is_an_error_before_anything_is_loaded()
    {
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--strategy", "half",
            "--out", cli.PathOf("r"));
        Assert.Equal(1, exit);
        Assert.Contains("error:", output);
        Assert.Contains("half", output);
    }

    [Fact]
    public void A_bad_row_is_an_error_with_its_line_unless_skipped_and_reported()
    {
        string train = cli.Write("bad-row.csv", "text,label\n" + string.Concat(TinyModels.ToyTexts(8, 3).Select(e => $"{e.Text},{e.Label}\n")) + "w5,w6,no\n");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", train, "--out", cli.PathOf("r1"), "--epochs", "1");
        Assert.Equal(1, exit);
        Assert.Contains($"{train}:10:", output);

        (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", train, "--out", cli.PathOf("r2"), "--epochs", "1",
            "--skip-bad-rows", "--strategy", "frozen");
        Assert.True(exit == 0, output);
        Assert.Contains("skipped 1 bad row(s)", output);
        Assert.Contains($"{train}:10: expected 2 fields", output);
    }

    [Fact]
    public void A_header_only_train_file_is_an_error()
    {
        string train = cli.Write("empty.csv", "text,label\n");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", train, "--out", cli.PathOf("r"));
        Assert.Equal(1, exit);
        Assert.Contains($"{train}: no examples", output);
    }

    [Fact]
    public void An_existing_run_directory_is_replaced_only_with_overwrite_and_refused_by_name_before_training()
    {
        string run = cli.PathOf("occupied");
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, "notes.txt"), "mine");
        string[] args = ["train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--strategy", "frozen", "--epochs", "1", "--out", run];

        var (exit, output) = TrainCliHarness.Run(args);
        Assert.Equal(1, exit);
        Assert.Contains(run, output);
        Assert.Contains("--overwrite", output);
        Assert.DoesNotContain("Data:", output); // refused before reading the data, let alone training
        Assert.Equal(["notes.txt"], Directory.GetFiles(run).Select(Path.GetFileName));

        (exit, output) = TrainCliHarness.Run([.. args, "--overwrite"]);
        Assert.True(exit == 0, output);
        Assert.False(File.Exists(Path.Combine(run, "notes.txt"))); // replaced as a whole
        Assert.True(File.Exists(Path.Combine(run, "model.safetensors")));

        // A previous run is protected the same way: refused without --overwrite, every byte kept.
        var before = Directory.GetFiles(run).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
        (exit, output) = TrainCliHarness.Run([.. args, "--epochs", "2"]);
        Assert.Equal(1, exit);
        Assert.Contains(run, output);
        var after = Directory.GetFiles(run).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        Assert.All(before, p => Assert.Equal(p.Value, after[p.Key]));

        (exit, output) = TrainCliHarness.Run([.. args, "--epochs", "2", "--overwrite"]);
        Assert.True(exit == 0, output);
        Assert.Equal(2, System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!["options"]!["epochs"]!.GetValue<int>());
        // Nothing but the run itself is left beside it (no temporary directories).
        Assert.Empty(Directory.GetDirectories(cli.Folder, ".occupied*"));
    }

    [Fact]
    public void A_failed_run_leaves_no_directory_behind()
    {
        string run = cli.PathOf("never");
        string train = cli.Write("one-label.csv", "text,label\nw1,yes\n");
        string eval = cli.Write("unknown-label.csv", "text,label\nw1,maybe\n");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", train, "--eval", eval, "--out", run);
        Assert.Equal(1, exit);
        Assert.Contains("maybe", output);
        Assert.False(Directory.Exists(run));
        Assert.Empty(Directory.GetDirectories(cli.Folder, ".never*"));
    }
}

public sealed class TrainTasksTests : IDisposable
{
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    [Fact]
    public void Regression_trains_evaluates_and_predicts_a_value()
    {
        var examples = TinyModels.ToyTexts(32, seed: 4);
        string data = cli.Write("scores.csv", "text,score\n" + string.Concat(examples.Select(e => $"{e.Text},{(e.Label == "yes" ? "1.0" : "0.0")}\n")));
        string run = cli.PathOf("regression");

        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", data, "--eval", data, "--task", "regression",
            "--label-column", "score", "--metric", "pearson", "--epochs", "1", "--batch-size", "16", "--out", run);
        Assert.True(exit == 0, output);
        Assert.Contains("pearson", File.ReadAllText(Path.Combine(run, "metrics.jsonl")));

        (exit, output) = TrainCliHarness.Run("evaluate", "--model", run, "--data", data, "--label-column", "score", "--format", "json");
        Assert.True(exit == 0, output);
        Assert.InRange(JsonNode.Parse(output)!["pearson"]!.GetValue<double>(), -1, 1);

        string predictions = cli.PathOf("scores-predicted.csv");
        (exit, output) = TrainCliHarness.Run("predict", "--model", run, "--data", data, "--output", predictions);
        Assert.True(exit == 0, output);
        Assert.Equal("text,label,p_score", File.ReadLines(predictions).First());
    }

    [Fact]
    public void Multi_label_jsonl_trains_and_evaluates_with_micro_f1()
    {
        string data = cli.Write("tags.jsonl", string.Concat(TinyModels.ToyTexts(24, seed: 5).Select((e, i) =>
            $"{{\"text\": \"{e.Text}\", \"labels\": [{(e.Label == "yes" ? "\"two\"" : "")}{(i % 3 == 0 ? (e.Label == "yes" ? ", " : "") + "\"third\"" : "")}]}}\n")));
        string run = cli.PathOf("multi");

        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", data, "--eval", data,
            "--epochs", "1", "--batch-size", "8", "--out", run);
        Assert.True(exit == 0, output);
        Assert.Contains("task multi,", output);

        (exit, output) = TrainCliHarness.Run("evaluate", "--model", run, "--data", data, "--format", "json");
        Assert.True(exit == 0, output);
        var json = JsonNode.Parse(output)!;
        Assert.NotNull(json["micro_f1"]);
        Assert.Equal(["third", "two"], json["per_class"]!.AsArray().Select(c => c!["label"]!.GetValue<string>()));
    }
}
