using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Lora;
using SharpTune.Strategies;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Fixtures;
using SharpTune.Training;
using TorchSharp;

namespace SharpTune.Tests.Lora;

/// <summary>A LoRA model saved as a PEFT adapter (PEFT's file names, keys and config) loads back onto its base model.</summary>
public sealed class PeftAdapterTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("sharptune-peft-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static readonly string[] Texts = ["A good day", "a bad day, really", "", "neutral words only"];

    // A classifier on the base with LoRA injected and every adapter and head tensor drawn far from zero, so that any
    // tensor that does not round-trip changes the logits (a fresh lora_B is zero and would hide a lost adapter).
    private static TextClassifier WithRandomAdapters(string baseModel, string head, int labels, string strategy = "lora:r=2,alpha=8,dropout=0")
    {
        var names = LabelSet.FromNames(Enumerable.Range(0, labels).Select(i => "c" + i));
        var classifier = TextClassifier.Create(baseModel, head, names, TaskType.SingleLabel, maxLength: 32, seed: 3);
        Strategy.Parse(strategy).Prepare(classifier.Model);
        using (torch.no_grad())
        {
            foreach (var (name, parameter) in classifier.Model.named_parameters())
                if (name.Contains("lora_", StringComparison.Ordinal) || !name.StartsWith(classifier.Model.EncoderPrefix, StringComparison.Ordinal))
                    parameter.normal_(0, 0.3);
        }
        classifier.Model.eval();
        return classifier;
    }

    private static float[] Probabilities(TextClassifier classifier) =>
        classifier.Predict(Texts).SelectMany(p => p.Probabilities.OrderBy(kv => kv.Key).Select(kv => kv.Value)).ToArray();

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string architecture in HfFixtures.Architectures)
            foreach (string head in new[] { "hf", "mean" }) data.Add(architecture, head);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_PEFT_adapter_loads_back_onto_its_base_with_identical_predictions(string architecture, string head)
    {
        string baseModel = HfFixtures.Directory(architecture);
        using var trained = WithRandomAdapters(baseModel, head, labels: 3);
        float[] expected = Probabilities(trained);
        string adapter = Path.Combine(root, "adapter");
        trained.SaveAdapter(adapter, baseModel);

        using var loaded = TextClassifier.LoadAdapter(baseModel, adapter);
        Assert.Equal(expected, Probabilities(loaded));
        Assert.Equal(trained.Model.Head.GetType(), loaded.Model.Head.GetType());
        Assert.Equal(["c0", "c1", "c2"], loaded.Labels.Names);
        Assert.Equal("lora:r=2,alpha=8", loaded.StrategyName);

        // The merged run computes the same (up to the rounding of W + BA).
        string run = Path.Combine(root, "run");
        trained.Save(run);
        using var merged = TextClassifier.Load(run);
        float[] mergedProbabilities = Probabilities(merged);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], mergedProbabilities[i], 1e-5f);
    }

    // A tagger on the base with LoRA injected and every adapter and head tensor drawn far from zero (see WithRandomAdapters).
    private static TokenTagger TaggerWithRandomAdapters(string baseModel, string head)
    {
        var tagger = TokenTagger.Create(baseModel, head, LabelSet.FromTags(["O", "B-X", "I-X"]), maxLength: 16, seed: 3);
        Strategy.Parse("lora:r=2,alpha=8,dropout=0").Prepare(tagger.Model);
        using (torch.no_grad())
        {
            foreach (var (name, parameter) in tagger.Model.named_parameters())
                if (name.Contains("lora_", StringComparison.Ordinal) || !name.StartsWith(tagger.Model.EncoderPrefix, StringComparison.Ordinal))
                    parameter.normal_(0, 0.3);
        }
        tagger.Model.eval();
        return tagger;
    }

    // Two sentences, one longer than a 16-token window: tags and probabilities of every word.
    private static IReadOnlyList<IReadOnlyList<TaggedWord>> Tags(TokenTagger tagger) =>
        tagger.Predict([["A", "good", "day"], [.. Enumerable.Repeat("neutral words only", 8).SelectMany(t => t.Split(' '))]]);

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_token_classification_adapter_loads_back_with_identical_tags_and_probabilities(string architecture, string head)
    {
        string baseModel = HfFixtures.Directory(architecture);
        using var trained = TaggerWithRandomAdapters(baseModel, head == "mean" ? "token" : head);
        var expected = Tags(trained);
        string adapter = Path.Combine(root, "adapter");
        trained.SaveAdapter(adapter, baseModel);

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(adapter, PeftAdapter.ConfigFile)))!.AsObject();
        Assert.Equal("TOKEN_CLS", config["task_type"]!.GetValue<string>());
        Assert.Equal(["classifier"], config["modules_to_save"]!.AsArray().Select(n => n!.GetValue<string>()));
        // PEFT saves a modules_to_save copy under the module's own key (…classifier.modules_to_save.default.weight → classifier.weight).
        var keys = SafeTensors.ReadHeader(Path.Combine(adapter, PeftAdapter.WeightsFile)).Names.ToList();
        Assert.Equal(["base_model.model.classifier.bias", "base_model.model.classifier.weight"],
            keys.Where(k => !k.Contains(".lora_", StringComparison.Ordinal)).Order(StringComparer.Ordinal));

        using var loaded = TokenTagger.LoadAdapter(baseModel, adapter);
        var actual = Tags(loaded);
        Assert.Equal(expected.Select(s => s.Select(w => (w.Word, w.Tag, w.Probability))), actual.Select(s => s.Select(w => (w.Word, w.Tag, w.Probability))));
        Assert.Equal(trained.Labels.Names, loaded.Labels.Names);
        Assert.Equal(TaskType.Token, loaded.Task);

        // Without sharptune.json (as Python's PEFT saves it) the head is the architecture's HF token head (its own window
        // length then: compared on a sentence that fits any window).
        File.Delete(Path.Combine(adapter, ClassifierCheckpoint.SettingsFile));
        using var fromPython = TokenTagger.LoadAdapter(baseModel, adapter);
        Assert.IsType<SharpTune.Heads.TokenClassificationHead>(fromPython.Model.Head);
        Assert.Equal(trained.Predict([["A", "good", "day"]])[0].Select(w => w.Probability), fromPython.Predict([["A", "good", "day"]])[0].Select(w => w.Probability));

        var error = Assert.Throws<SharpTuneException>(() => TextClassifier.LoadAdapter(baseModel, adapter));
        Assert.Contains("TokenTagger.LoadAdapter", error.Message);
    }

    [Fact]
    public void The_adapter_has_PEFTs_file_names_key_names_and_config_fields()
    {
        string baseModel = TinyModels.Directory(Path.Combine(root, "base"));
        using var trained = WithRandomAdapters(baseModel, "pooled", labels: 2, "lora:r=4,alpha=16,dropout=0.1");
        string adapter = Path.Combine(root, "adapter");
        trained.SaveAdapter(adapter, baseModel);

        Assert.Equal(["adapter_config.json", "adapter_model.safetensors", "sharptune.json"], Directory.GetFiles(adapter).Select(Path.GetFileName).Order());
        // PEFT's layout for BertForSequenceClassification with LoRA on query and value (r 4, hidden 32, 2 layers) and
        // the classifier as modules_to_save, adapter name "default" dropped: written out by hand, not derived.
        var expectedKeys = new Dictionary<string, string>
        {
            ["base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"] = "4,32",
            ["base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight"] = "32,4",
            ["base_model.model.bert.encoder.layer.0.attention.self.value.lora_A.weight"] = "4,32",
            ["base_model.model.bert.encoder.layer.0.attention.self.value.lora_B.weight"] = "32,4",
            ["base_model.model.bert.encoder.layer.1.attention.self.query.lora_A.weight"] = "4,32",
            ["base_model.model.bert.encoder.layer.1.attention.self.query.lora_B.weight"] = "32,4",
            ["base_model.model.bert.encoder.layer.1.attention.self.value.lora_A.weight"] = "4,32",
            ["base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"] = "32,4",
            ["base_model.model.classifier.weight"] = "2,32",
            ["base_model.model.classifier.bias"] = "2",
        };
        var header = SafeTensors.ReadHeader(Path.Combine(adapter, "adapter_model.safetensors"));
        Assert.Equal(expectedKeys.OrderBy(p => p.Key), header.Tensors.ToDictionary(t => t.Name, t => string.Join(",", t.Shape)).OrderBy(p => p.Key));
        Assert.Equal("pt", header.Metadata["format"]);

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json")))!.AsObject();
        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal("SEQ_CLS", config["task_type"]!.GetValue<string>());
        Assert.Equal(4, config["r"]!.GetValue<int>());
        Assert.Equal(16.0, config["lora_alpha"]!.GetValue<double>());
        Assert.Equal(0.1, config["lora_dropout"]!.GetValue<double>());
        Assert.Equal(["query", "value"], config["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal("none", config["bias"]!.GetValue<string>());
        Assert.False(config["fan_in_fan_out"]!.GetValue<bool>());
        Assert.True(config["inference_mode"]!.GetValue<bool>());
        Assert.Equal(["classifier"], config["modules_to_save"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(baseModel, config["base_model_name_or_path"]!.GetValue<string>());
        Assert.False(config["use_dora"]!.GetValue<bool>());
        Assert.False(config["use_rslora"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData("distilbert", "hf", new[] { "pre_classifier", "classifier" }, "base_model.model.distilbert.transformer.layer.0.attention.q_lin.lora_A.weight")]
    [InlineData("deberta-v2", "hf", new[] { "pooler", "classifier" }, "base_model.model.deberta.encoder.layer.0.attention.self.query_proj.lora_A.weight")]
    [InlineData("roberta", "mean", new[] { "sharptune_head" }, "base_model.model.roberta.encoder.layer.1.attention.self.value.lora_B.weight")]
    public void Modules_to_save_name_the_whole_head(string architecture, string head, string[] modules, string adapterKey)
    {
        using var trained = WithRandomAdapters(HfFixtures.Directory(architecture), head, labels: 3);
        string adapter = Path.Combine(root, "adapter");
        trained.SaveAdapter(adapter, null);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json")))!.AsObject();
        Assert.Equal(modules, config["modules_to_save"]!.AsArray().Select(n => n!.GetValue<string>()));
        var keys = SafeTensors.ReadHeader(Path.Combine(adapter, "adapter_model.safetensors")).Names.ToList();
        Assert.Contains(adapterKey, keys);
        Assert.All(keys.Where(k => !k.Contains(".lora_", StringComparison.Ordinal)),
            k => Assert.Contains(modules, m => k.StartsWith("base_model.model." + m + ".", StringComparison.Ordinal)));
    }

    [Fact]
    public void An_adapter_saved_by_Python_without_sharptune_json_gets_the_HF_head_and_the_base_labels()
    {
        string baseModel = HfFixtures.Directory("bert"); // its config.json has id2label neg, neu, pos
        using var trained = WithRandomAdapters(baseModel, "hf", labels: 3);
        float[] expected = Probabilities(trained);
        string adapter = Path.Combine(root, "adapter");
        trained.SaveAdapter(adapter, baseModel);
        File.Delete(Path.Combine(adapter, ClassifierCheckpoint.SettingsFile));

        using var loaded = TextClassifier.LoadAdapter(baseModel, adapter);
        Assert.IsType<SharpTune.Heads.PooledHead>(loaded.Model.Head);
        Assert.Equal(["neg", "neu", "pos"], loaded.Labels.Names);
        Assert.Equal(expected, Probabilities(loaded));
    }

    [Theory]
    [InlineData("use_dora", "true")]
    [InlineData("bias", "\"all\"")]
    [InlineData("target_modules", "\".*query\"")]
    [InlineData("peft_type", "\"IA3\"")]
    [InlineData("task_type", "\"CAUSAL_LM\"")]
    [InlineData("r", "\"eight\"")]
    public void A_config_SharpTune_cannot_reproduce_is_refused_naming_the_file_and_field(string field, string value)
    {
        string baseModel = TinyModels.Directory(Path.Combine(root, "base"));
        using var trained = WithRandomAdapters(baseModel, "pooled", labels: 2);
        string adapter = Path.Combine(root, "adapter");
        trained.SaveAdapter(adapter, baseModel);
        string path = Path.Combine(adapter, PeftAdapter.ConfigFile);
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config[field] = JsonNode.Parse(value);
        File.WriteAllText(path, config.ToJsonString());

        var error = Assert.Throws<SharpTuneException>(() => TextClassifier.LoadAdapter(baseModel, adapter));
        Assert.Contains(path, error.Message);
        Assert.Contains(field, error.Message);
    }

    [Fact]
    public void An_adapter_missing_a_tensor_is_refused_naming_it()
    {
        string baseModel = TinyModels.Directory(Path.Combine(root, "base"));
        using var trained = WithRandomAdapters(baseModel, "pooled", labels: 2);
        string adapter = Path.Combine(root, "adapter");
        trained.SaveAdapter(adapter, baseModel);
        string weights = Path.Combine(adapter, PeftAdapter.WeightsFile);
        var tensors = SafeTensors.Load(weights);
        const string dropped = "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight";
        tensors.Remove(dropped, out var removed);
        removed!.Dispose();
        SafeTensors.Save(weights, tensors);
        foreach (var t in tensors.Values) t.Dispose();

        var error = Assert.Throws<SharpTuneException>(() => TextClassifier.LoadAdapter(baseModel, adapter));
        Assert.Contains(weights, error.Message);
        Assert.Contains("bert.encoder.layer.1.attention.self.value.lora_B.weight", error.Message);
    }
}

/// <summary>The CLI: a lora run carries its PEFT adapter, and evaluate/predict put an adapter on its base with --adapter.</summary>
public sealed class PeftAdapterCliTests : IDisposable
{
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    [Fact]
    public void A_lora_run_writes_adapter_and_predict_with_adapter_on_the_base_equals_the_run()
    {
        string run = cli.PathOf("lora-run");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--strategy", "lora:r=2",
            "--head", "mean", "--epochs", "1", "--batch-size", "8", "--out", run);
        Assert.True(exit == 0, output);
        string adapter = Path.Combine(run, PeftAdapter.RunSubdirectory);
        Assert.True(File.Exists(Path.Combine(adapter, PeftAdapter.ConfigFile)), output);
        Assert.False(File.Exists(Path.Combine(run, PeftAdapter.ConfigFile))); // the root stays the merged HF checkpoint

        static JsonObject Predict(params string[] args)
        {
            var (code, json) = TrainCliHarness.Run([.. args, "--text", "w2 w5 w9", "--format", "json"]);
            Assert.True(code == 0, json);
            return JsonNode.Parse(json)!.AsObject();
        }
        var merged = Predict("predict", "--model", run);
        var unmerged = Predict("predict", "--model", cli.ModelDirectory, "--adapter", adapter);
        Assert.Equal(merged["label"]!.GetValue<string>(), unmerged["label"]!.GetValue<string>());
        foreach (var (label, p) in merged["probabilities"]!.AsObject())
            Assert.Equal(p!.GetValue<double>(), unmerged["probabilities"]![label]!.GetValue<double>(), 1e-5);

        (exit, output) = TrainCliHarness.Run("evaluate", "--model", cli.ModelDirectory, "--adapter", adapter, "--data", cli.EvalFile);
        Assert.True(exit == 0, output);
        Assert.Contains("accuracy", output, StringComparison.OrdinalIgnoreCase);

        // --runtime onnx with the adapter: merged, exported once into ADAPTER/onnx/, the same figures as TorchSharp's.
        JsonObject Evaluate(string runtime)
        {
            var (code, json) = TrainCliHarness.Run("evaluate", "--model", cli.ModelDirectory, "--adapter", adapter, "--data", cli.EvalFile,
                "--format", "json", "--runtime", runtime);
            Assert.True(code == 0, json);
            return JsonNode.Parse(json)!.AsObject();
        }
        var torchFigures = Evaluate("torch");
        var onnxFigures = Evaluate("onnx");
        string export = Path.Combine(adapter, "onnx", "model.onnx");
        Assert.True(File.Exists(export));
        Assert.False(Directory.Exists(Path.Combine(cli.ModelDirectory, "onnx"))); // the base model's directory is left alone
        DateTime written = File.GetLastWriteTimeUtc(export);
        foreach (string metric in new[] { "loss", "accuracy", "macro_f1" })
            Assert.Equal(torchFigures[metric]!.GetValue<double>(), onnxFigures[metric]!.GetValue<double>(), 1e-4);
        // (The export file above is what shows ONNX Runtime ran: the two losses may agree to the last bit, and did once.)
        var again = Evaluate("onnx");
        Assert.Equal(written, File.GetLastWriteTimeUtc(export)); // reused, not exported again
        Assert.Equal(onnxFigures["loss"]!.GetValue<double>(), again["loss"]!.GetValue<double>());

        (exit, output) = TrainCliHarness.Run("predict", "--model", cli.ModelDirectory, "--adapter", cli.PathOf("no-such-adapter"), "--text", "w1");
        Assert.Equal(1, exit);
        Assert.Contains("--adapter", output);
    }
}
