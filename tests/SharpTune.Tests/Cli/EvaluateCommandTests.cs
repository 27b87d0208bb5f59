using System.Text.Json.Nodes;

namespace SharpTune.Tests.Cli;

public sealed class EvaluateCommandTests(TrainCliHarness cli) : IClassFixture<TrainCliHarness>
{
    [Fact]
    public void Evaluate_as_json_is_one_object_with_metrics_per_class_scores_and_confusion_matrix()
    {
        var (exit, output) = TrainCliHarness.Run("evaluate", "--model", cli.TrainedRun, "--data", cli.EvalFile, "--format", "json");

        Assert.True(exit == 0, output);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(16, json["examples"]!.GetValue<int>());
        double accuracy = json["accuracy"]!.GetValue<double>();
        Assert.InRange(accuracy, 0, 1);
        Assert.True(json["loss"]!.GetValue<double>() > 0);
        Assert.NotNull(json["macro_f1"]);
        Assert.NotNull(json["mcc"]);
        Assert.Equal(["no", "yes"], json["per_class"]!.AsArray().Select(c => c!["label"]!.GetValue<string>()));
        var matrix = json["confusion_matrix"]!["rows_gold_columns_predicted"]!.AsArray()
            .Select(r => r!.AsArray().Select(v => v!.GetValue<int>()).ToArray()).ToArray();
        Assert.Equal(16, matrix.Sum(r => r.Sum()));
        Assert.Equal(accuracy, (matrix[0][0] + matrix[1][1]) / 16.0, 12);
        Assert.Equal([8, 8], matrix.Select(r => r.Sum())); // gold counts: ToyTexts alternate yes/no
    }

    [Fact]
    public void Evaluate_agrees_with_the_last_evaluation_of_training()
    {
        // The eval file during training is the same, and the run keeps the best (here: last improving) weights.
        var metrics = File.ReadAllLines(Path.Combine(cli.TrainedRun, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Where(l => l["type"]!.GetValue<string>() == "eval" && l["is_best"]!.GetValue<bool>()).Last();
        var (exit, output) = TrainCliHarness.Run("evaluate", "--model", cli.TrainedRun, "--data", cli.EvalFile, "--format", "json");
        Assert.True(exit == 0, output);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(metrics["loss"]!.GetValue<double>(), json["loss"]!.GetValue<double>(), 5);
        Assert.Equal(metrics["accuracy"]!.GetValue<double>(), json["accuracy"]!.GetValue<double>(), 12);
    }

    [Fact]
    public void Evaluate_as_a_table_shows_metrics_per_class_and_confusion_matrix()
    {
        var (exit, output) = TrainCliHarness.Run("evaluate", "--model", cli.TrainedRun, "--data", cli.EvalFile);
        Assert.True(exit == 0, output);
        Assert.Contains("accuracy", output);
        Assert.Contains("macro_f1", output);
        Assert.Contains("Per class", output);
        Assert.Contains("Confusion matrix", output);
    }

    [Fact]
    public void An_unknown_label_in_the_data_is_an_error_naming_file_and_line()
    {
        string data = cli.Write("unknown-label.csv", "text,label\nw1,yes\nw2,no\nw3,perhaps\n");
        var (exit, output) = TrainCliHarness.Run("evaluate", "--model", cli.TrainedRun, "--data", data);
        Assert.Equal(1, exit);
        Assert.Contains($"error: {data}:4:", output);
        Assert.Contains("'perhaps'", output);
    }

    [Fact]
    public void A_missing_model_directory_or_data_file_is_an_error_naming_it()
    {
        string missing = cli.PathOf("no-run");
        var (exit, output) = TrainCliHarness.Run("evaluate", "--model", missing, "--data", cli.EvalFile);
        Assert.Equal(1, exit);
        Assert.Contains($"{missing}: --model directory not found", output);

        (exit, output) = TrainCliHarness.Run("evaluate", "--model", cli.TrainedRun, "--data", cli.PathOf("none.csv"));
        Assert.Equal(1, exit);
        Assert.Contains("none.csv: --data file not found", output);
    }
}
