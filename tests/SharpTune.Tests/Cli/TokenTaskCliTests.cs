using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Tests.Fixtures;

namespace SharpTune.Tests.Cli;

/// <summary>The token task through the real CLI: train detects CoNLL data, evaluate and predict read the run as a tagger.</summary>
public sealed class TokenTaskCliTests : IDisposable
{
    private readonly TrainCliHarness cli = new();
    private static readonly string Model = HfFixtures.TokenDirectory("bert");

    public void Dispose() => cli.Dispose();

    private static string Sample(string split) => Path.Combine(Data.TokenDatasetTests.BrownSample, split + ".tsv");

    [Fact]
    public void Conll_data_trains_a_tagger_that_evaluate_and_predict_read_back()
    {
        string run = cli.PathOf("pos");
        var (exit, output) = TrainCliHarness.Run("train", "--model", Model, "--train", Sample("train"), "--eval", Sample("dev"),
            "--epochs", "1", "--batch-size", "16", "--max-length", "64", "--metric", "token_accuracy", "--out", run);

        Assert.True(exit == 0, output);
        Assert.Contains("201 training sentences", output);
        Assert.Contains("task token, 12 labels", output);
        Assert.Contains("head token", output);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!;
        Assert.Equal("BertForTokenClassification", config["architectures"]![0]!.GetValue<string>());
        var eval = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Single(l => l["type"]!.GetValue<string>() == "eval");
        Assert.InRange(eval["token_accuracy"]!.GetValue<double>(), 0, 1);

        // evaluate: the same metric on the same data as the run's own evaluation (both score every dev word once).
        (exit, output) = TrainCliHarness.Run("evaluate", "--model", run, "--data", Sample("dev"), "--format", "json");
        Assert.True(exit == 0, output);
        var evaluation = JsonNode.Parse(output)!;
        Assert.Equal(60, evaluation["examples"]!.GetValue<int>());
        Assert.Equal(eval["token_accuracy"]!.GetValue<double>(), evaluation["token_accuracy"]!.GetValue<double>(), 6);
        Assert.Equal(12, evaluation["per_class"]!.AsArray().Count);

        // predict --data: CoNLL out, one line per word, sentences as in the input.
        string tagged = cli.PathOf("dev.tagged.conll");
        (exit, output) = TrainCliHarness.Run("predict", "--model", run, "--data", Sample("dev"), "--output", tagged);
        Assert.True(exit == 0, output);
        var input = TokenDataset.Load(Sample("dev")).Sentences;
        var written = TokenDataset.Load(tagged).Sentences;
        Assert.Equal(input.Select(s => s.Tokens), written.Select(s => s.Tokens));
        Assert.All(written.SelectMany(s => s.Tags), t => Assert.Contains(t, TokenDataset.TagSet(input).Names));
        // The written tags are the model's predictions: their accuracy is the one evaluate reported.
        double accuracy = input.SelectMany(s => s.Tags).Zip(written.SelectMany(s => s.Tags)).Average(p => p.First == p.Second ? 1.0 : 0.0);
        Assert.Equal(evaluation["token_accuracy"]!.GetValue<double>(), accuracy, 6);

        // predict --text: words with character offsets.
        (exit, output) = TrainCliHarness.Run("predict", "--model", run, "--text", "The jury said, Friday.", "--format", "json");
        Assert.True(exit == 0, output);
        var words = JsonNode.Parse(output)!["words"]!.AsArray();
        Assert.Equal(["The", "jury", "said", ",", "Friday", "."], words.Select(w => w!["word"]!.GetValue<string>()));
        Assert.Equal([0, 4, 9, 13, 15, 21], words.Select(w => w!["start"]!.GetValue<int>()));
    }

    [Fact]
    public void Compare_on_conll_data_runs_taggers_and_reports_token_metrics()
    {
        string output = cli.PathOf("compare-pos");
        var (exit, text) = TrainCliHarness.Run("compare", "--model", Model, "--train", Sample("train"), "--eval", Sample("dev"),
            "--strategies", "frozen,full", "--epochs", "1", "--batch-size", "16", "--max-length", "64", "--train-limit", "40", "--eval-limit", "20",
            "--out", output);

        Assert.True(exit == 0, text);
        Assert.Contains("on 40 training and 20 eval sentences", text);
        Assert.Contains("task token, head token", text);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "compare.json")))!;
        Assert.Equal("token_accuracy", json["metric"]!.GetValue<string>()); // the token task's default
        Assert.Equal("token", json["options"]!["task"]!.GetValue<string>());
        Assert.Equal(20, json["inputs"]!["eval_examples"]!.GetValue<int>());
        var rows = json["rows"]!.AsArray();
        Assert.Equal(["frozen", "full"], rows.Select(r => r!["strategy"]!.GetValue<string>()));
        var dev = TokenDataset.Load(Sample("dev")).Sentences.Take(20).ToList();
        foreach (var row in rows)
        {
            string run = row!["run_directory"]!.GetValue<string>();
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!;
            Assert.Equal("BertForTokenClassification", config["architectures"]![0]!.GetValue<string>());
            // The row's token accuracy is the saved tagger's on the 20 eval sentences, counted word by word here.
            using var tagger = TokenTagger.Load(run);
            var predicted = tagger.Predict(dev.Select(s => s.Tokens).ToList());
            double accuracy = dev.SelectMany(s => s.Tags).Zip(predicted.SelectMany(s => s)).Average(p => p.First == p.Second.Tag ? 1.0 : 0.0);
            Assert.Equal(accuracy, row["metrics"]!["token_accuracy"]!.GetValue<double>(), 6);
            Assert.InRange(row["metrics"]!["macro_f1"]!.GetValue<double>(), 0, 1);
            Assert.Null(row["metrics"]!["entity_f1"]); // POS tags: no entities
        }
        Assert.Equal("sentences", json["test"]!["unit"]!.GetValue<string>());
        Assert.Equal(20, json["test"]!["examples"]!.GetValue<int>());
        // The console table, compare.md and the HTML report show the token metrics.
        string header = text.Split('\n').First(l => l.Contains("strategy") && l.Contains("token_accuracy"));
        Assert.Contains("macro_f1", header);
        Assert.Contains("| token_accuracy | macro_f1 | loss |", File.ReadAllText(Path.Combine(output, "compare.md")));
        (exit, text) = TrainCliHarness.Run("report", output);
        Assert.True(exit == 0, text);
        string html = File.ReadAllText(Path.Combine(output, "report.html"));
        Assert.Contains("token_accuracy</th>", html);
        Assert.Contains("paired bootstrap over 20 eval sentences", html);
    }

    [Fact]
    public void Train_and_compare_refuse_entity_f1_for_tags_without_a_scheme_before_training()
    {
        foreach (string command in new[] { "train", "compare" })
        {
            var (exit, output) = TrainCliHarness.Run(command, "--model", Model, "--train", Sample("train"), "--eval", Sample("dev"),
                "--metric", "entity_f1", "--out", cli.PathOf("never"));

            Assert.Equal(1, exit);
            Assert.Contains("--metric 'entity_f1': the tags (., ADJ, ADP, ADV, CONJ, DET, NOUN, NUM, PRON, PRT, …) have no B-/I- scheme", output);
            Assert.DoesNotContain("epoch", output);
            Assert.False(Directory.Exists(cli.PathOf("never")));
        }
    }

    [Fact]
    public void An_unknown_tag_in_the_eval_data_is_an_error_naming_the_file_and_line()
    {
        string eval = cli.PathOf("bad.conll");
        File.WriteAllText(eval, "The\tDET\njury\tNOUN\n\nIt\tPRON\nsang\tSINGING\n");
        var (exit, output) = TrainCliHarness.Run("train", "--model", Model, "--train", Sample("train"), "--eval", eval,
            "--epochs", "1", "--max-length", "64", "--out", cli.PathOf("never"));

        Assert.Equal(1, exit);
        Assert.Contains($"{eval}:5", output);
        Assert.Contains("SINGING", output);
        Assert.False(Directory.Exists(cli.PathOf("never")));
    }
}
