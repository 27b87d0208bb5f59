using System.Text.Json.Nodes;
using SharpTune.Tests.Fixtures;

namespace SharpTune.Tests.Cli;

/// <summary>
/// A task checkpoint saved by Python's transformers, of every architecture, is a --model for predict and evaluate
/// (its head and id2label) and for embed (its encoder, saying the head is not used).
/// </summary>
public sealed class PythonCheckpointCliTests
{
    public static TheoryData<string> Architectures() => new(HfFixtures.Architectures);

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Predict_gives_the_softmax_of_the_logits_transformers_computed(string architecture)
    {
        var c = HfFixtures.Case(architecture, "plain_english");
        var (exit, output) = TrainCliHarness.Run("predict", "--model", HfFixtures.Directory(architecture), "--text", c["text"]!.GetValue<string>(), "--format", "json");
        Assert.True(exit == 0, output);
        var json = JsonNode.Parse(output[output.IndexOf('{')..])!.AsObject();
        float[] logits = HfFixtures.Floats(c["sequence_logits"]);
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
        string[] labels = ["neg", "neu", "pos"];
        for (int i = 0; i < 3; i++)
            Assert.Equal(Math.Exp(logits[i] - max) / sum, json["probabilities"]![labels[i]]!.GetValue<double>(), 4);
        Assert.Equal(labels[Array.IndexOf(logits, logits.Max())], json["label"]!.GetValue<string>());
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Evaluate_reads_labels_from_id2label(string architecture)
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-pycli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string data = Path.Combine(dir, "eval.csv");
            File.WriteAllText(data, "text,label\nA good day,pos\nA bad day,neg\nA day,neu\n");
            var (exit, output) = TrainCliHarness.Run("evaluate", "--model", HfFixtures.Directory(architecture), "--data", data);
            Assert.True(exit == 0, output);
            Assert.Contains("accuracy", output, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Embed_uses_the_encoder_of_a_task_checkpoint_and_says_the_head_is_not_used(string architecture)
    {
        var (exit, output) = TrainCliHarness.Run("embed", "--model", HfFixtures.Directory(architecture), "--text", "Hello world");
        Assert.True(exit == 0, output);
        Assert.Contains("is not used", output);
        Assert.Contains("classifier.", output);
        // JSON output stays one JSON document; it lists the unused keys.
        var (_, json) = TrainCliHarness.Run("embed", "--model", HfFixtures.Directory(architecture), "--text", "Hello world", "--format", "json");
        var unused = JsonNode.Parse(json)!["unused_keys"]!.AsArray().Select(k => k!.GetValue<string>()).ToList();
        Assert.Contains(unused, k => k.StartsWith("classifier.", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Train_with_the_hf_head_saves_a_run_that_predict_loads(string architecture)
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-pytrain-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string data = Path.Combine(dir, "train.csv");
            File.WriteAllText(data, "text,label\n" + string.Concat(Enumerable.Range(0, 12).Select(i =>
                i % 2 == 0 ? $"A good and happy day number {i},pos\n" : $"A sad and bad day number {i},neg\n")));
            string run = Path.Combine(dir, "run");
            var (exit, output) = TrainCliHarness.Run("train", "--model", HfFixtures.Directory(architecture), "--train", data,
                "--head", "hf", "--strategy", "lora", "--epochs", "1", "--batch-size", "4", "--max-length", "32", "--out", run);
            Assert.True(exit == 0, output);
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!;
            Assert.Equal(architecture, config["model_type"]!.GetValue<string>());
            Assert.EndsWith("ForSequenceClassification", config["architectures"]![0]!.GetValue<string>());

            var (predictExit, prediction) = TrainCliHarness.Run("predict", "--model", run, "--text", "A good day", "--format", "json");
            Assert.True(predictExit == 0, prediction);
            Assert.Contains("\"neg\"", prediction);
            Assert.Contains("\"pos\"", prediction);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void An_unknown_model_type_is_one_line_naming_the_file_and_the_supported_types()
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-unknown-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type": "gpt2", "n_embd": 32}""");
            File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), []);
            var (exit, output) = TrainCliHarness.Run("inspect", "--model", dir);
            Assert.Equal(1, exit);
            Assert.Contains(Path.Combine(dir, "config.json"), output);
            Assert.Contains("model_type 'gpt2' is not supported; supported: bert, roberta, xlm-roberta, deberta-v2, distilbert, electra", output);
            Assert.DoesNotContain("   at ", output); // no stack trace
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Inspect_shows_an_architecture_in_its_own_config_keys_and_groups()
    {
        var (exit, output) = TrainCliHarness.Run("inspect", "--model", HfFixtures.Directory("distilbert"), "--strategy", "top:1", "--head", "hf");
        Assert.True(exit == 0, output);
        Assert.Contains("DistilBertModel", output);
        Assert.Matches(@"\bdim\s+32", output);
        Assert.Matches(@"n_layers\s+2", output);
        Assert.Contains("layer 1", output);
        Assert.Contains("pre_classifier", output); // the unused head of the task checkpoint, named
    }

    [Theory]
    [InlineData("roberta")]
    [InlineData("deberta-v2")]
    public void Compare_runs_its_strategies_on_another_architecture(string architecture)
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-pycompare-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string data = Path.Combine(dir, "data.csv");
            File.WriteAllText(data, "text,label\n" + string.Concat(Enumerable.Range(0, 16).Select(i =>
                i % 2 == 0 ? $"A good and happy day number {i},pos\n" : $"A sad and bad day number {i},neg\n")));
            string output = Path.Combine(dir, "compare");
            var (exit, text) = TrainCliHarness.Run("compare", "--model", HfFixtures.Directory(architecture), "--train", data, "--eval", data,
                "--strategies", "frozen,lora,full", "--head", "hf", "--epochs", "1", "--batch-size", "4", "--max-length", "32", "--out", output);
            Assert.True(exit == 0, text);
            var rows = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "compare.json")))!["rows"]!.AsArray();
            Assert.Equal(3, rows.Count);
            var runs = Directory.GetDirectories(output).Where(d => File.Exists(Path.Combine(d, "config.json"))).ToList();
            Assert.Equal(3, runs.Count);
            Assert.All(runs, run => Assert.Equal(architecture, JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!["model_type"]!.GetValue<string>()));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void A_bare_encoder_directory_embeds_as_the_task_checkpoint_does_and_trains(string architecture)
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-bare-" + Guid.NewGuid().ToString("N"));
        try
        {
            // The encoder alone (RobertaModel keys, no prefix) with its config and tokenizer, as AutoModel.save_pretrained writes it.
            using (var task = SharpTune.Models.PretrainedEncoder.Load(HfFixtures.Directory(architecture)))
            {
                var tensors = SharpTune.Checkpoints.StateDict.ToDictionary(task.Model);
                var config = task.Model.Config.ToJson();
                config["architectures"] = new JsonArray(task.Model.Architecture.BaseClass);
                SharpTune.Checkpoints.HfModelDirectory.Save(dir, config, tensors);
                foreach (var t in tensors.Values) t.Dispose();
                task.Tokenizer.Save(dir);
            }
            var (bareExit, bare) = TrainCliHarness.Run("embed", "--model", dir, "--text", "Hello world", "--format", "json");
            var (taskExit, task2) = TrainCliHarness.Run("embed", "--model", HfFixtures.Directory(architecture), "--text", "Hello world", "--format", "json");
            Assert.True(bareExit == 0 && taskExit == 0, bare + task2);
            Assert.Null(JsonNode.Parse(bare)!["unused_keys"]);
            Assert.Equal(JsonNode.Parse(bare)!["embedding"]!.ToJsonString(), JsonNode.Parse(task2)!["embedding"]!.ToJsonString());

            string data = Path.Combine(dir, "train.csv");
            File.WriteAllText(data, "text,label\nA good day,pos\nA bad day,neg\nA fine day,pos\nA sad day,neg\n");
            var (trainExit, train) = TrainCliHarness.Run("train", "--model", dir, "--train", data, "--head", "hf", "--strategy", "top:1",
                "--epochs", "1", "--batch-size", "2", "--max-length", "16", "--out", Path.Combine(dir, "run"));
            Assert.True(trainExit == 0, train);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
