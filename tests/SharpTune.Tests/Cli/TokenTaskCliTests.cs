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
