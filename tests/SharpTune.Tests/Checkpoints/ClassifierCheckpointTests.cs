using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Strategies;
using SharpTune.Training;

namespace SharpTune.Tests.Checkpoints;

public class ClassifierCheckpointTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "sharptune-ckpt-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (System.IO.Directory.Exists(root)) System.IO.Directory.Delete(root, recursive: true);
    }

    private TextClassifier TrainTiny(string head, string strategy)
    {
        string model = TinyModels.Directory(Path.Combine(root, "base"));
        var train = TinyModels.ToyTexts(24, seed: 1);
        var classifier = TextClassifier.Create(model, head, LabelSet.FromTraining(train), maxLength: 16);
        classifier.Train(train, null, Strategy.Parse(strategy), new TrainingOptions { Epochs = 1, BatchSize = 8, LearningRates = new(1e-3) });
        return classifier;
    }

    [Theory]
    [InlineData("pooled", "full")]
    [InlineData("cls", "lora:r=2")]
    [InlineData("mean", "frozen")]
    public void Save_then_load_gives_identical_probabilities(string head, string strategy)
    {
        using var trained = TrainTiny(head, strategy);
        string run = Path.Combine(root, "run");
        trained.Save(run);
        var texts = TinyModels.ToyTexts(10, seed: 2).Select(e => e.Text).Append("").ToList();
        var before = trained.Predict(texts);
        using var loaded = TextClassifier.Load(run);
        var after = loaded.Predict(texts);
        for (int i = 0; i < texts.Count; i++)
        {
            Assert.Equal(before[i].Label, after[i].Label);
            // A LoRA run is saved merged (W + s·B·A) while the trained model keeps its adapter (W·x + s·B·A·x): equal to
            // float32 rounding, not bit for bit (seen: 6e-8 with two libtorch threads). Every other run is bit-identical.
            Assert.Equal(before[i].Probabilities["yes"], after[i].Probabilities["yes"], strategy.StartsWith("lora", StringComparison.Ordinal) ? 1e-6 : 0);
        }
        Assert.Equal(Strategy.Parse(strategy).Name, loaded.StrategyName); // e.g. lora:r=2,alpha=16: the canonical name is saved
    }

    [Fact]
    public void A_pooled_head_run_is_a_BertForSequenceClassification_checkpoint()
    {
        using var trained = TrainTiny("pooled", "frozen");
        string run = Path.Combine(root, "run");
        trained.Save(run);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!.AsObject();
        Assert.Equal("BertForSequenceClassification", config["architectures"]![0]!.GetValue<string>());
        Assert.Equal("no", config["id2label"]!["0"]!.GetValue<string>());
        Assert.Equal(1, config["label2id"]!["yes"]!.GetValue<int>());
        Assert.Equal("single_label_classification", config["problem_type"]!.GetValue<string>());
        var keys = SafeTensors.ReadHeader(Path.Combine(run, "model.safetensors")).Names.ToHashSet();
        Assert.Contains("bert.embeddings.word_embeddings.weight", keys);
        Assert.Contains("bert.pooler.dense.weight", keys);
        Assert.Contains("classifier.weight", keys);
        Assert.Contains("classifier.bias", keys);
        Assert.True(File.Exists(Path.Combine(run, "vocab.txt")));
        Assert.True(File.Exists(Path.Combine(run, "tokenizer_config.json")));
        // Without sharptune.json it still loads, as an HF checkpoint from Python would.
        File.Delete(Path.Combine(run, ClassifierCheckpoint.SettingsFile));
        using var loaded = TextClassifier.Load(run);
        Assert.IsType<SharpTune.Heads.PooledHead>(loaded.Model.Head);
    }

    [Fact]
    public void Lora_adapters_are_merged_into_plain_keys_on_save()
    {
        using var trained = TrainTiny("cls", "lora:r=2");
        string run = Path.Combine(root, "run");
        trained.Save(run);
        var keys = SafeTensors.ReadHeader(Path.Combine(run, "model.safetensors")).Names.ToList();
        Assert.DoesNotContain(keys, k => k.Contains("lora_") || k.Contains("base_layer"));
        Assert.Contains("bert.encoder.layer.0.attention.self.query.weight", keys);
        Assert.Contains("sharptune_head.out_proj.weight", keys); // cls is not BERT's HF head
    }

    [Fact]
    public void An_eval_label_the_model_does_not_know_is_named_with_its_line()
    {
        string model = TinyModels.Directory(Path.Combine(root, "base"));
        using var classifier = TextClassifier.Create(model, "cls", LabelSet.FromNames(["no", "yes"]), maxLength: 16);
        var examples = new[] { TextExample.Single("w1 w2", "maybe") with { Line = 7 } };
        var error = Assert.Throws<SharpTuneException>(() => classifier.Encode(examples, "dev.csv"));
        Assert.Contains("dev.csv:7", error.Message);
        Assert.Contains("maybe", error.Message);
    }

    [Fact]
    public void Loading_a_directory_without_settings_or_classifier_architecture_says_what_it_expected()
    {
        string model = TinyModels.Directory(Path.Combine(root, "base"));
        var error = Assert.ThrowsAny<SharpTuneException>(() => TextClassifier.Load(model));
        Assert.Contains(model, error.Message);
    }
}
