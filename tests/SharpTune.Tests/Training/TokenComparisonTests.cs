using SharpTune.Data;
using SharpTune.Strategies;
using SharpTune.Tests.Fixtures;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>A strategy comparison on tagged sentences: the same engine as for texts, with taggers and token metrics.</summary>
public sealed class TokenComparisonTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sharptune-token-compare-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>
    /// The brown sample's sentences with noun chunks as entities: a run of NOUN words is B-NP, I-NP …, every other word O
    /// (BIO tags, so entity scores exist).
    /// </summary>
    private static List<TaggedSentence> NounChunks(string split, int count) =>
        TokenDataset.Load(Path.Combine(Data.TokenDatasetTests.BrownSample, split + ".tsv")).Sentences.Take(count)
            .Select(s => s with { Tags = s.Tags.Select((t, i) => t != "NOUN" ? "O" : i > 0 && s.Tags[i - 1] == "NOUN" ? "I-NP" : "B-NP").ToList() })
            .ToList();

    [Fact]
    public void Tagged_sentences_compare_frozen_and_full_by_entity_f1_tested_per_sentence()
    {
        var train = NounChunks("train", 40);
        var eval = NounChunks("dev", 16);
        var options = new ComparisonOptions
        {
            Strategies = [new FrozenStrategy(), new FullStrategy()], ModelDirectory = HfFixtures.TokenDirectory("bert"),
            Task = TaskType.Token, Head = "token", MaxLength = 32, Metric = MetricNames.EntityF1,
            Training = new TrainingOptions { Epochs = 1, BatchSize = 16 },
        };
        var data = new TokenTaskData(train, eval, TokenDataset.TagSet(train));

        ComparisonResult result = new StrategyComparison(_directory, options).Run(data);

        Assert.Equal(["frozen", "full"], result.Rows.Select(r => r.Strategy));
        Assert.Equal([MetricNames.TokenAccuracy, MetricNames.EntityF1, MetricNames.MacroF1, MetricNames.Loss], StrategyComparison.ShownMetrics(result.Rows));
        foreach (ComparisonRow row in result.Rows)
        {
            // The row's entity F1 is the saved tagger's on the eval sentences, recomputed from its word-level predictions.
            using var tagger = TokenTagger.Load(row.RunDirectory);
            var predicted = tagger.Predict(eval.Select(s => s.Tokens).ToList()).Select(s => (IReadOnlyList<string>)s.Select(w => w.Tag).ToList()).ToList();
            EntityReport direct = EntityMetrics.Compute(eval.Select(s => s.Tags).ToList(), predicted);
            Assert.Equal(direct.MicroF1, row.Metric(MetricNames.EntityF1)!.Value, 5);
            Assert.True(row.AuditPassed, row.Strategy);
        }
        Assert.True(result.Rows[0].UsedFeatureCache);
        // The bootstrap drew sentences, all 16 of them, and says so in the verdict.
        SignificanceTest test = result.Summary.Test!;
        Assert.Equal(Significance.SentenceUnit, test.Unit);
        Assert.Equal(eval.Count, test.Examples);
        Assert.Contains($"paired bootstrap over {eval.Count} eval sentences", result.Summary.Verdict);
        string markdown = File.ReadAllText(result.MarkdownPath);
        Assert.Contains("| token_accuracy | entity_f1 | macro_f1 | loss |", markdown);
        Assert.Contains("task token, head token", markdown);
        // compare.json reads back with the test's unit.
        Assert.Equal(Significance.SentenceUnit, StrategyComparison.Load(_directory).Summary.Test!.Unit);
    }

    [Fact]
    public void Options_without_a_head_compare_a_token_task_with_the_token_head()
    {
        var train = NounChunks("train", 8);
        var eval = NounChunks("dev", 4);
        // No Head: a tagging comparison gets the token head (it used to default to mean, which the token task refuses).
        var options = new ComparisonOptions
        {
            Strategies = [new FrozenStrategy()], ModelDirectory = HfFixtures.TokenDirectory("bert"), Task = TaskType.Token, MaxLength = 32,
            Training = new TrainingOptions { Epochs = 1, BatchSize = 8 },
        };
        Assert.Null(options.Head);

        ComparisonResult result = new StrategyComparison(_directory, options).Run(new TokenTaskData(train, eval, TokenDataset.TagSet(train)));

        using var tagger = TokenTagger.Load(Assert.Single(result.Rows).RunDirectory);
        Assert.IsType<SharpTune.Heads.TokenClassificationHead>(tagger.Model.Head);
        Assert.Equal("token", System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(result.JsonPath))!["options"]!["head"]!.GetValue<string>());
        Assert.Contains("task token, head token", File.ReadAllText(result.MarkdownPath));
    }

    [Fact]
    public void Data_of_another_task_than_the_options_is_refused()
    {
        var train = NounChunks("train", 4);
        var options = new ComparisonOptions { Strategies = [new FrozenStrategy()], ModelDirectory = HfFixtures.TokenDirectory("bert") };

        var error = Assert.Throws<SharpTuneException>(() =>
            new StrategyComparison(_directory, options).Run(new TokenTaskData(train, train, TokenDataset.TagSet(train))));

        Assert.Equal("The comparison's task is single; the data are for the token task.", error.Message);
    }
}
