using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Tests.Fixtures;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Checkpoints;

/// <summary>
/// What Python's <c>transformers</c> finds in a saved run, for every architecture and built-in head: a head that is the
/// architecture's HF head is saved with exactly the keys, shapes and config of the Python-saved task checkpoint of the
/// fixture; any other head has no key an HF class reads. And every run loads back into SharpTune with the same logits.
/// </summary>
public sealed class PythonLayoutTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("sharptune-pylayout-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    // Written from the HF classes (modeling_*.py), not from SharpTune's registrations: which built-in head IS the
    // architecture's XForSequenceClassification head. TokenClassificationHead is every XForTokenClassification's.
    private static readonly Dictionary<string, string[]> HfSequenceHeads = new()
    {
        ["bert"] = ["pooled", "hf"],
        ["roberta"] = ["cls", "hf"],
        ["xlm-roberta"] = ["cls", "hf"],
        ["distilbert"] = ["hf"],
        ["electra"] = ["hf"],
        ["deberta-v2"] = ["hf"],
    };

    private static readonly string[] SequenceLabels = ["neg", "neu", "pos"];        // the fixtures' id2label
    private static readonly string[] TokenLabels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"];

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string architecture in HfFixtures.Architectures)
        {
            string[] heads = architecture == "bert" // only BERT's fixture has a pooler for the pooled head to read
                ? ["cls", "pooled", "mean", "hf", "token", nameof(PreClassifierHead)]
                : ["cls", "mean", "hf", "token"];
            foreach (string head in heads) data.Add(architecture, head);
        }
        return data;
    }

    private (SequenceClassifier Model, SharpTune.Tokenization.Tokenizer Tokenizer, LabelSet Labels) Build(string architecture, string head)
    {
        torch.manual_seed(7);
        var encoder = PretrainedEncoder.Load(HfFixtures.Directory(architecture));
        bool token = head == "token";
        var labels = LabelSet.FromNames(token ? TokenLabels : SequenceLabels);
        Head built = token
            ? new TokenClassificationHead(encoder.Model.Config.HiddenSize, labels.Count)
            : HeadRegistry.Create(head, encoder.Model, labels.Count);
        // Random head weights far from zero, so that a key loaded into the wrong place changes the logits.
        using (torch.no_grad())
            foreach (var p in built.parameters()) p.normal_(0, 0.5);
        var model = new SequenceClassifier(encoder.Model, built);
        model.eval();
        return (model, encoder.Tokenizer, labels);
    }

    private string Save(SequenceClassifier model, SharpTune.Tokenization.Tokenizer tokenizer, LabelSet labels, string name)
    {
        string run = Path.Combine(root, name);
        ClassifierCheckpoint.Save(run, model, tokenizer, labels,
            new ClassifierSettings(model.Head.GetType().Name, model.Head.Options(), model.Head.Outputs,
                model.Head is TokenClassificationHead ? TaskType.Token : TaskType.SingleLabel, 64, null));
        return run;
    }

    private static Dictionary<string, string> KeysAndShapes(string directory) =>
        SafeTensors.ReadHeader(Path.Combine(directory, "model.safetensors")).Tensors
            .ToDictionary(t => t.Name, t => string.Join(",", t.Shape));

    private static Tensor Logits(SequenceClassifier model, string architecture)
    {
        var @case = HfFixtures.Case(architecture, "padded_batch");
        using var noGrad = torch.no_grad();
        return model.call(HfParity.Ints(@case, "input_ids")!, HfParity.Ints(@case, "token_type_ids"), HfParity.Ints(@case, "attention_mask"));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_saved_run_has_the_HF_layout_of_its_head_or_no_key_an_HF_class_reads(string architecture, string head)
    {
        var (model, tokenizer, labels) = Build(architecture, head);
        using var _ = model;
        string run = Save(model, tokenizer, labels, $"{architecture}-{head}");
        var saved = KeysAndShapes(run);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!.AsObject();
        string prefix = model.Encoder.Architecture.KeyPrefix;

        bool token = head == "token";
        bool isHf = token || HfSequenceHeads[architecture].Contains(head);
        string fixture = token ? HfFixtures.TokenDirectory(architecture) : HfFixtures.Directory(architecture);
        var python = KeysAndShapes(fixture);
        var pythonConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject();
        if (isHf)
        {
            // Exactly the keys and shapes transformers saved for this class, and a config that builds the same model.
            Assert.Equal(python.OrderBy(p => p.Key), saved.OrderBy(p => p.Key));
            foreach (var (field, value) in pythonConfig)
            {
                if (field is "transformers_version" or "torch_dtype") continue; // provenance, not the model
                Assert.True(JsonNode.DeepEquals(value, config[field]), $"config.json {field}: saved {config[field]?.ToJsonString()}, transformers {value?.ToJsonString()}");
            }
            Assert.DoesNotContain(saved.Keys, k => k.StartsWith("sharptune_head.", StringComparison.Ordinal));
        }
        else
        {
            // No key of any HF head of this architecture (sequence or token) is in the file: the classifier of
            // AutoModelForSequenceClassification is newly initialised, loudly, instead of loading a look-alike.
            var hfHeadKeys = KeysAndShapes(HfFixtures.Directory(architecture)).Keys.Concat(KeysAndShapes(HfFixtures.TokenDirectory(architecture)).Keys)
                .Where(k => !k.StartsWith(prefix, StringComparison.Ordinal)).ToHashSet();
            Assert.NotEmpty(hfHeadKeys);
            Assert.DoesNotContain(saved.Keys, hfHeadKeys.Contains);
            Assert.All(saved.Keys.Where(k => !k.StartsWith(prefix, StringComparison.Ordinal)), k => Assert.StartsWith("sharptune_head.", k));
            Assert.Equal(model.Head.parameters().Count(), saved.Keys.Count(k => k.StartsWith("sharptune_head.", StringComparison.Ordinal)));
            // Every encoder key is one AutoModel reads (same name and shape as in transformers' own file).
            Assert.All(saved.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal)), p => Assert.Equal(python[p.Key], p.Value));
            Assert.Equal(pythonConfig["model_type"]!.GetValue<string>(), config["model_type"]!.GetValue<string>());
            Assert.Equal(JsonNode.Parse(File.ReadAllText(Path.Combine(HfFixtures.Directory(architecture), "fixture_info.json")))!["base_model_class"]!.GetValue<string>(),
                Assert.Single(config["architectures"]!.AsArray())!.GetValue<string>());
            var settings = JsonNode.Parse(File.ReadAllText(Path.Combine(run, ClassifierCheckpoint.SettingsFile)))!["head"]!;
            Assert.Equal("sharptune_head.", settings["key_prefix"]!.GetValue<string>());
            Assert.Equal(model.Head.GetType().Name, settings["type"]!.GetValue<string>());
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_saved_run_loads_back_with_identical_logits(string architecture, string head)
    {
        var (model, tokenizer, labels) = Build(architecture, head);
        using var _ = model;
        using var before = Logits(model, architecture);
        string run = Save(model, tokenizer, labels, $"{architecture}-{head}");
        var (loaded, loadedLabels, _) = ClassifierCheckpoint.Load(run);
        using (loaded)
        {
            using var after = Logits(loaded, architecture);
            Assert.Equal(model.Head.GetType(), loaded.Head.GetType());
            Assert.Equal(labels.Names, loadedLabels.Names);
            Assert.Equal(0.0, (before - after).abs().max().item<float>());
        }
    }

    [Theory]
    [InlineData("mean")]
    [InlineData(nameof(PreClassifierHead))] // a head whose keys sat at the top level (pre_classifier.*, classifier.*)
    public void A_format_1_run_with_its_head_under_HF_names_still_loads(string head)
    {
        var (model, tokenizer, labels) = Build("bert", head);
        using var _ = model;
        using var before = Logits(model, "bert");
        string run = Save(model, tokenizer, labels, "format-1");
        // Rewrite it as format 1 wrote it: the head's keys under HF's names, format_version 1.
        string weights = Path.Combine(run, "model.safetensors");
        var tensors = SafeTensors.Load(weights);
        string legacyPrefix = model.Head.KeysAtRoot ? "" : "classifier.";
        var legacy = tensors.ToDictionary(
            p => p.Key.StartsWith("sharptune_head.", StringComparison.Ordinal) ? legacyPrefix + p.Key["sharptune_head.".Length..] : p.Key, p => p.Value);
        Assert.Contains(legacy.Keys, k => k.StartsWith("classifier.", StringComparison.Ordinal));
        SafeTensors.Save(weights, legacy);
        foreach (var t in tensors.Values) t.Dispose();
        string settingsPath = Path.Combine(run, ClassifierCheckpoint.SettingsFile);
        var settings = JsonNode.Parse(File.ReadAllText(settingsPath))!.AsObject();
        settings["format_version"] = 1;
        settings["head"]!.AsObject().Remove("key_prefix");
        settings["head"]!.AsObject().Remove("hf_class");
        File.WriteAllText(settingsPath, settings.ToJsonString());

        var (loaded, _, _) = ClassifierCheckpoint.Load(run);
        using (loaded)
        {
            using var after = Logits(loaded, "bert");
            Assert.Equal(0.0, (before - after).abs().max().item<float>());
        }
    }

    [Fact]
    public void A_settings_file_of_a_newer_format_is_refused_naming_the_file()
    {
        var (model, tokenizer, labels) = Build("bert", "mean");
        using var _ = model;
        string run = Save(model, tokenizer, labels, "future");
        string settingsPath = Path.Combine(run, ClassifierCheckpoint.SettingsFile);
        var settings = JsonNode.Parse(File.ReadAllText(settingsPath))!.AsObject();
        settings["format_version"] = ClassifierCheckpoint.FormatVersion + 1;
        File.WriteAllText(settingsPath, settings.ToJsonString());
        var error = Assert.Throws<SharpTuneException>(() => ClassifierCheckpoint.Load(run));
        Assert.Contains(settingsPath, error.Message);
        Assert.Contains("format_version", error.Message);
    }
}
