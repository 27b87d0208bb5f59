using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Tests.Fixtures;

namespace SharpTune.Tests.Checkpoints;

/// <summary>
/// A run whose HF head drops out at another rate than its config gives HF's class writes that rate into config.json
/// under the key the class reads (transformers 4.45.2), so that training on in Python uses the same head.
/// </summary>
public sealed class HeadDropoutConfigTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("sharptune-dropout-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static readonly LabelSet Labels = LabelSet.FromNames(["a", "b", "c"]);

    // The architecture's own HF head for the config, with dropout 0.37 (every fixture config gives 0.1 or 0.2).
    private static Func<int, int, Head> HfHeadWithDropout(string directory, bool token)
    {
        EncoderConfig config = Architectures.LoadConfig(Path.Combine(directory, "config.json"));
        Architecture architecture = Architectures.Of(config);
        using Head reference = token ? architecture.TokenHead(config, 3) : architecture.SequenceHead(config, 3);
        JsonObject options = reference.Options();
        options["dropout"] = 0.37;
        string type = reference.GetType().Name;
        return (hidden, outputs) => HeadRegistry.Create(type, hidden, outputs, options);
    }

    private static JsonObject ReadConfig(string run) => JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!.AsObject();

    [Theory]
    [InlineData("bert", "classifier_dropout")]
    [InlineData("roberta", "classifier_dropout")]
    [InlineData("xlm-roberta", "classifier_dropout")]
    [InlineData("distilbert", "seq_classif_dropout")]
    [InlineData("electra", "classifier_dropout")]
    [InlineData("deberta-v2", "cls_dropout")]
    public void A_sequence_head_with_its_own_dropout_writes_it_under_the_key_its_HF_class_reads(string name, string key)
    {
        string directory = HfFixtures.Directory(name);
        string run = Path.Combine(root, name);
        using (var classifier = TextClassifier.Create(directory, HfHeadWithDropout(directory, token: false), Labels, maxLength: 32))
        {
            Assert.NotNull(classifier.Model.HuggingFaceClass);
            classifier.Save(run);
        }
        Assert.Equal(0.37, ReadConfig(run)[key]!.GetValue<double>());
        // Read back as Python would build the class from it: the head's dropout is the run's.
        EncoderConfig written = Architectures.LoadConfig(Path.Combine(run, "config.json"));
        using Head rebuilt = Architectures.Of(written).SequenceHead(written, 3);
        Assert.Equal(0.37, rebuilt.Options()["dropout"]!.GetValue<double>());
        // The encoder's own dropout is untouched.
        Assert.Equal(ReadConfig(directory)[name == "distilbert" ? "dropout" : "hidden_dropout_prob"]!.GetValue<double>(),
            ReadConfig(run)[name == "distilbert" ? "dropout" : "hidden_dropout_prob"]!.GetValue<double>());
    }

    [Theory]
    [InlineData("bert", "classifier_dropout")]
    [InlineData("roberta", "classifier_dropout")]
    [InlineData("electra", "classifier_dropout")]
    [InlineData("distilbert", null)]
    [InlineData("deberta-v2", null)]
    public void A_token_head_with_its_own_dropout_writes_it_where_HF_reads_one_for_the_head(string name, string? key)
    {
        string directory = HfFixtures.Directory(name);
        string run = Path.Combine(root, name + "-token");
        using (var tagger = TokenTagger.Create(directory, HfHeadWithDropout(directory, token: true), Labels, maxLength: 32))
        {
            Assert.NotNull(tagger.Model.HuggingFaceClass);
            tagger.Save(run);
        }
        JsonObject config = ReadConfig(run);
        if (key is not null)
        {
            Assert.Equal(0.37, config[key]!.GetValue<double>());
            EncoderConfig written = Architectures.LoadConfig(Path.Combine(run, "config.json"));
            using Head rebuilt = Architectures.Of(written).TokenHead(written, 3);
            Assert.Equal(0.37, rebuilt.Options()["dropout"]!.GetValue<double>());
        }
        else
        {
            // HF's DistilBertForTokenClassification reads `dropout`, DebertaV2ForTokenClassification `hidden_dropout_prob`:
            // the encoder's, which must not change for the head's sake. Nothing is written; sharptune.json keeps the rate.
            JsonObject original = ReadConfig(directory);
            foreach (string entry in new[] { "dropout", "hidden_dropout_prob", "seq_classif_dropout", "cls_dropout", "classifier_dropout" })
                Assert.Equal(original[entry]?.ToJsonString(), config[entry]?.ToJsonString());
        }
    }

    [Theory]
    [InlineData("distilbert", 0.1)] // HF: config.dropout (0.1), not seq_classif_dropout (0.2)
    [InlineData("deberta-v2", 0.1)] // HF: hidden_dropout_prob
    [InlineData("bert", 0.1)]
    public void A_Python_saved_token_checkpoint_gets_the_dropout_its_HF_class_uses(string name, double expected)
    {
        using var tagger = TokenTagger.Load(HfFixtures.TokenDirectory(name));
        Assert.Equal(expected, tagger.Model.Head.Options()["dropout"]!.GetValue<double>());
    }

    [Fact]
    public void A_head_with_the_configs_dropout_or_without_an_HF_class_leaves_the_config_as_it_was()
    {
        string directory = HfFixtures.Directory("bert");
        string same = Path.Combine(root, "same"), mean = Path.Combine(root, "mean");
        using (var classifier = TextClassifier.Create(directory, "hf", Labels, maxLength: 32)) classifier.Save(same);
        using (var classifier = TextClassifier.Create(directory, (h, o) => new MeanPoolingHead(h, o, 0.37), Labels, maxLength: 32)) classifier.Save(mean);
        Assert.Null(ReadConfig(same)["classifier_dropout"]);
        Assert.Null(ReadConfig(mean)["classifier_dropout"]);
    }
}
