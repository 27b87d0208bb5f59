using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Strategies;
using SharpTune.Tests.Fixtures;
using SharpTune.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

/// <summary>The token task end to end through the library: encode, train, evaluate, predict, save and load.</summary>
public sealed class TokenTaggerTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sharptune-tagger-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static IReadOnlyList<TaggedSentence> Sample(string split) =>
        TokenDataset.Load(Path.Combine(Data.TokenDatasetTests.BrownSample, split + ".tsv")).Sentences;

    private static TrainingOptions Options(int epochs, double rate) => new()
    {
        Epochs = epochs, BatchSize = 16, LearningRates = new LearningRates(rate, 1e-2), WarmupRatio = 0, Seed = 3,
    };

    [Fact]
    public void Full_fine_tuning_learns_the_tags_of_its_training_sentences()
    {
        var train = Sample("train").Take(120).ToList();
        using var tagger = TokenTagger.Create(HfFixtures.TokenDirectory("bert"), "token", TokenDataset.TagSet(train), maxLength: 64);
        double before = ((TokenMetrics)tagger.Evaluate(train).Details!).TokenAccuracy;

        tagger.Train(train, null, Strategy.Parse("full"), Options(epochs: 8, rate: 3e-3));
        var after = (TokenMetrics)tagger.Evaluate(train).Details!;

        // Independent baseline: always answering the most frequent tag of the training words.
        var allTags = train.SelectMany(s => s.Tags).ToList();
        double majority = allTags.GroupBy(t => t).Max(g => g.Count()) / (double)allTags.Count;
        output.WriteLine($"token accuracy before {before:F3}, after {after.TokenAccuracy:F3}, majority tag {majority:F3}");
        Assert.Equal(allTags.Count, after.Count); // every word scored exactly once
        Assert.True(after.TokenAccuracy > majority + 0.1, $"accuracy {after.TokenAccuracy:F3} vs majority {majority:F3}");
        Assert.Null(after.Entities); // POS tags have no B-/I- scheme: no entity scores
    }

    [Theory]
    [InlineData("full")]
    [InlineData("frozen")]
    [InlineData("top:1")]
    [InlineData("bitfit")]
    [InlineData("lora")]
    [InlineData("gradual")]
    public void Every_strategy_trains_a_tagger_and_its_audit_passes(string name)
    {
        var train = Sample("train").Take(24).ToList();
        using var tagger = TokenTagger.Create(HfFixtures.TokenDirectory("bert"), "token", TokenDataset.TagSet(train), maxLength: 64);
        Strategy strategy = Strategy.Parse(name);
        var result = tagger.Train(train, Sample("dev").Take(8).ToList(), strategy, Options(epochs: 2, rate: strategy.DefaultLearningRate));

        Assert.True(result.Audit.Passed, name);
        Assert.Equal(2, result.Evaluations.Count);
        Assert.All(result.Evaluations, e => Assert.InRange(e.Metrics[MetricNames.TokenAccuracy], 0, 1));
        Assert.Equal(name == "frozen", result.UsedFeatureCache);
    }

    [Fact]
    public void Evaluation_scores_each_word_once_across_windows_as_seqeval_would()
    {
        // Two sentences, one long enough for several windows; the "model" is replaced by hand-made probabilities that
        // predict a known tag per word, so the metrics must equal those of the word-level sequences themselves.
        LabelSet tags = LabelSet.FromTags(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]);
        var random = new Random(11);
        var sentences = new List<TaggedSentence>();
        var predictedWords = new List<IReadOnlyList<string>>();
        foreach (int length in new[] { 70, 9 })
        {
            var words = Enumerable.Range(0, length).Select(i => (i % 4 == 0 ? "Atlanta" : "committee") + (i % 3 == 0 ? "'s" : "")).ToList();
            var gold = words.Select(_ => tags.Names[random.Next(tags.Count)]).ToList();
            sentences.Add(new TaggedSentence(words, gold, 1));
            predictedWords.Add(gold.Select(t => random.NextDouble() < 0.7 ? t : tags.Names[random.Next(tags.Count)]).ToList());
        }
        using var tagger = TokenTagger.Create(HfFixtures.TokenDirectory("bert"), "token", tags, maxLength: 24, stride: 6);
        TaskDataset data = tagger.Encode(sentences);
        Assert.True(data.Count > 3, $"the long sentence should need several windows, got {data.Count} examples");

        // One-hot probabilities: at each scored token, the predicted tag of its word.
        var probabilities = new float[data.Count][];
        var wordCursor = new int[sentences.Count];
        for (int i = 0; i < data.Count; i++)
        {
            int sentence = data.Sentences![i];
            probabilities[i] = new float[data.Length(i) * tags.Count];
            for (int t = 0; t < data.Length(i); t++)
            {
                int tag = data.TokenLabels![i][t] == TokenWindows.IgnoreIndex ? 0 : tags.Id(predictedWords[sentence][wordCursor[sentence]++]);
                probabilities[i][t * tags.Count + tag] = 1;
            }
        }
        Assert.Equal(sentences.Select(s => s.Tokens.Count), wordCursor);

        var metrics = (TokenMetrics)TaskType.Token.Evaluate(data, probabilities);
        var expected = EntityMetrics.Compute(sentences.Select(s => s.Tags).ToList(), predictedWords);
        Assert.Equal(79, metrics.Count);
        Assert.Equal(expected.TokenAccuracy, metrics.TokenAccuracy, 12);
        Assert.Equal(expected.MicroF1, metrics.Entities!.MicroF1, 12);
        Assert.Equal(TagScheme.IOB2, metrics.Scheme);
        var values = metrics.ToDictionary();
        Assert.Equal(expected.MicroF1, values[MetricNames.EntityF1], 12);
    }

    [Fact]
    public void A_300_word_sentence_is_tagged_completely_through_windows()
    {
        var words = Enumerable.Range(0, 300).Select(i => new[] { "The", "committee", "approved", "Atlanta's", "budget", ",", "1961", "." }[i % 8]).ToList();
        using var tagger = TokenTagger.Create(HfFixtures.TokenDirectory("bert"), "token", LabelSet.FromTags(["O", "NOUN", "VERB"]), maxLength: 32, stride: 8);
        Assert.True(tagger.Encode([new TaggedSentence(words, [], 0)]).Count >= 10, "300 words cannot fit one 32-token window");

        var tagged = Assert.Single(tagger.Predict([words]));

        // Completely: one tag per word, in order, none lost at a window's edge.
        Assert.Equal(300, tagged.Count);
        Assert.Equal(words, tagged.Select(w => w.Word));
        Assert.All(tagged, w => Assert.Contains(w.Tag, tagger.Labels.Names));
        Assert.All(tagged, w => Assert.InRange(w.Probability, 1f / 3, 1f));
    }

    [Fact]
    public void A_saved_tagger_is_a_token_classification_checkpoint_and_loads_back_with_the_same_predictions()
    {
        var train = Sample("train").Take(40).ToList();
        var dev = Sample("dev").Take(10).ToList();
        string run = Path.Combine(_directory, "run");
        IReadOnlyList<IReadOnlyList<TaggedWord>> before;
        using (var tagger = TokenTagger.Create(HfFixtures.TokenDirectory("bert"), "token", TokenDataset.TagSet(train), maxLength: 64))
        {
            tagger.Train(train, null, Strategy.Parse("top:1"), Options(epochs: 1, rate: 1e-3));
            before = tagger.Predict(dev.Select(s => s.Tokens).ToList());
            tagger.Save(run);
        }

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!.AsObject();
        Assert.Equal("BertForTokenClassification", config["architectures"]![0]!.GetValue<string>());
        Assert.Null(config["problem_type"]); // HF has no problem_type for token classification
        var tagNames = TokenDataset.TagSet(train).Names;
        Assert.Equal(tagNames, Enumerable.Range(0, tagNames.Count).Select(i => config["id2label"]![i.ToString(System.Globalization.CultureInfo.InvariantCulture)]!.GetValue<string>()).ToList());
        Assert.Equal("token", JsonNode.Parse(File.ReadAllText(Path.Combine(run, "sharptune.json")))!["task"]!.GetValue<string>());

        using var loaded = TokenTagger.Load(run);
        var after = loaded.Predict(dev.Select(s => s.Tokens).ToList());
        Assert.Equal(before.SelectMany(s => s.Select(w => w.Tag)), after.SelectMany(s => s.Select(w => w.Tag)));
        Assert.Equal(before.SelectMany(s => s.Select(w => w.Probability)), after.SelectMany(s => s.Select(w => w.Probability)));
        Assert.Throws<SharpTuneException>(() => TextClassifier.Load(run));
    }

    [Fact]
    public void The_frozen_strategy_caches_every_token_feature_once_in_float16()
    {
        var train = Sample("train").Take(30).ToList();
        using var tagger = TokenTagger.Create(HfFixtures.TokenDirectory("bert"), "token", TokenDataset.TagSet(train), maxLength: 64);
        var events = new List<TrainingEvent>();
        var result = tagger.Train(train, null, Strategy.Parse("frozen"), Options(epochs: 2, rate: 1e-2) with { DiskFeatureCache = false },
            new SynchronousProgress(events.Add));

        Assert.True(result.UsedFeatureCache);
        var cached = Assert.Single(events.OfType<FeaturesCachedEvent>());
        TaskDataset data = tagger.Encode(train);
        long tokens = Enumerable.Range(0, data.Count).Sum(i => (long)data.Length(i));
        Assert.Equal(tokens * 32 * 2, cached.Bytes); // hidden 32, two bytes a value
        Assert.True(result.Audit.Passed);
    }

    [Fact]
    public void A_custom_mlp_head_tags_through_the_same_head_contract()
    {
        var train = Sample("train").Take(60).ToList();
        using var tagger = TokenTagger.Create(HfFixtures.TokenDirectory("bert"), (hidden, outputs) => new MlpTokenHead(hidden, outputs),
            TokenDataset.TagSet(train), maxLength: 64);
        double before = tagger.Evaluate(train).Loss;
        var result = tagger.Train(train, null, Strategy.Parse("full"), Options(epochs: 8, rate: 3e-3));
        double after = tagger.Evaluate(train).Loss;

        // Independent baseline: the best constant guess (the training tags' own distribution) has loss = their entropy.
        var counts = train.SelectMany(s => s.Tags).GroupBy(t => t).Select(g => (double)g.Count()).ToList();
        double entropy = -counts.Sum(c => c / counts.Sum() * Math.Log(c / counts.Sum()));
        output.WriteLine($"MLP head loss {before:F3} → {after:F3}; tag entropy {entropy:F3}");
        Assert.True(after < entropy - 0.2, $"loss {before:F3} → {after:F3}, entropy {entropy:F3}");
        Assert.True(result.Audit.Passed);
        Assert.Contains(result.Plan.Trainable, e => e.Key == "sharptune_head.dense.weight"); // not an HF head: under the prefix Python never reads
    }

    [Fact]
    public void A_bidirectional_lstm_head_learns_the_tags()
    {
        var train = Sample("train").Take(60).ToList();
        using var tagger = TokenTagger.Create(HfFixtures.TokenDirectory("bert"), (hidden, outputs) => new BiLstmTokenHead(hidden, outputs),
            TokenDataset.TagSet(train), maxLength: 64);
        var lstmKeys = tagger.Model.named_parameters().Select(p => p.name).Where(k => k.Contains(".lstm.", StringComparison.Ordinal)).ToList();
        var start = tagger.Model.named_parameters().Where(p => lstmKeys.Contains(p.name)).ToDictionary(p => p.name, p => p.parameter.detach().clone());
        double before = tagger.Evaluate(train).Loss;
        var result = tagger.Train(train, null, Strategy.Parse("full"), Options(epochs: 30, rate: 3e-3));
        double after = tagger.Evaluate(train).Loss;

        // Its parameters are registered (the LSTM is a field, as RegisterComponents needs), train and move. It learns more
        // slowly than the MLP: after 8 epochs (32 steps) its loss is still near the tag entropy (1.93 against 1.99), after 30 far below.
        var counts = train.SelectMany(s => s.Tags).GroupBy(t => t).Select(g => (double)g.Count()).ToList();
        double entropy = -counts.Sum(c => c / counts.Sum() * Math.Log(c / counts.Sum()));
        output.WriteLine($"BiLSTM head loss {before:F3} → {after:F3}; tag entropy {entropy:F3}; lstm keys {string.Join(", ", lstmKeys)}");
        foreach (var (name, parameter) in tagger.Model.named_parameters().Where(p => lstmKeys.Contains(p.name)))
            output.WriteLine($"{name}: moved {(parameter - start[name]).abs().max().item<float>():E2}, trainable {result.Plan.Trainable.Any(e => e.Key == name)}");
        Assert.Equal(8, lstmKeys.Count); // weight_ih, weight_hh, bias_ih, bias_hh per direction
        Assert.All(lstmKeys, k => Assert.Contains(result.Plan.Trainable, e => e.Key == k));
        Assert.All(lstmKeys, k => Assert.True((tagger.Model.named_parameters().Single(p => p.name == k).parameter - start[k]).abs().max().item<float>() > 0, k + " did not move"));
        Assert.True(after < entropy - 1, $"loss {before:F3} → {after:F3}, entropy {entropy:F3}");
        Assert.True(result.Audit.Passed);
    }

    [Fact]
    public void A_head_that_gives_one_output_per_text_is_refused_for_tagging_and_the_token_head_for_texts()
    {
        var e = Assert.Throws<SharpTuneException>(() => TokenTagger.Create(HfFixtures.TokenDirectory("bert"), "mean", LabelSet.FromTags(["O", "X"]), maxLength: 64));
        Assert.Contains("needs a head with one output per token", e.Message);
        e = Assert.Throws<SharpTuneException>(() => TextClassifier.Create(HfFixtures.TokenDirectory("bert"), "token", LabelSet.FromNames(["a", "b"]), maxLength: 64));
        Assert.Contains("--task token", e.Message);
    }

    [Fact]
    public void Raw_text_is_split_into_words_with_offsets_and_entities_are_spelled_from_the_tags()
    {
        const string text = "Pierre  Vinken, 61, joined Atlanta's board.";
        var spans = TokenTagger.SplitWords(text);
        Assert.Equal(["Pierre", "Vinken", ",", "61", ",", "joined", "Atlanta", "'", "s", "board", "."], spans.Select(s => text[s.Start..s.End]));

        using var tagger = TokenTagger.Create(HfFixtures.TokenDirectory("bert"), "token", LabelSet.FromTags(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]), maxLength: 64);
        TaggedText tagged = tagger.PredictText(text);
        Assert.Equal(spans.Select(s => (s.Start, s.End)), tagged.Words.Select(w => (w.Start, w.End)));
        var expected = EntityMetrics.Entities(tagged.Words.Select(w => w.Tag).ToList());
        Assert.Equal(expected.Count, tagged.Entities.Count);
        foreach (var (entity, (type, start, end)) in tagged.Entities.Zip(expected))
        {
            Assert.Equal(type, entity.Type);
            Assert.Equal(text[spans[start].Start..spans[end].End], entity.Text);
        }
        Assert.Empty(tagger.PredictText("   ").Words);
    }

    /// <summary>A custom per-token head: a two-layer MLP (linear → GELU → linear) on every token's hidden state.</summary>
    private sealed class MlpTokenHead : Head
    {
        private readonly TorchSharp.Modules.Linear dense;
        private readonly TorchSharp.Modules.Linear out_proj;

        public MlpTokenHead(int hidden, int outputs) : base("classifier")
        {
            Outputs = outputs;
            dense = nn.Linear(hidden, 64);
            out_proj = nn.Linear(64, outputs);
            RegisterComponents();
        }

        public override HeadInput Input => HeadInput.Sequence;
        public override bool PerToken => true;
        public override int Outputs { get; }

        public override Tensor forward(Tensor features, Tensor? attentionMask) => out_proj.call(nn.functional.gelu(dense.call(features)));
    }

    /// <summary>A custom per-token head: a bidirectional LSTM over the tokens' hidden states, then a linear layer per token.</summary>
    private sealed class BiLstmTokenHead : Head
    {
        private readonly TorchSharp.Modules.LSTM lstm;
        private readonly TorchSharp.Modules.Linear out_proj;

        public BiLstmTokenHead(int hidden, int outputs) : base("classifier")
        {
            Outputs = outputs;
            lstm = nn.LSTM(hidden, 32, bidirectional: true, batchFirst: true);
            out_proj = nn.Linear(64, outputs);
            RegisterComponents();
        }

        public override HeadInput Input => HeadInput.Sequence;
        public override bool PerToken => true;
        public override int Outputs { get; }

        public override Tensor forward(Tensor features, Tensor? attentionMask)
        {
            var (sequence, _, _) = lstm.call(features);
            return out_proj.call(sequence);
        }
    }

    private sealed class SynchronousProgress(Action<TrainingEvent> report) : IProgress<TrainingEvent>
    {
        public void Report(TrainingEvent value) => report(value);
    }
}
