using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Export;
using SharpTune.Inference;
using SharpTune.Models;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Fixtures;
using Xunit.Abstractions;

namespace SharpTune.Tests.Export;

/// <summary>
/// Evaluation and prediction through ONNX Runtime (<see cref="TaskModel.UseOnnxRuntime"/>, <c>--runtime onnx</c>): the
/// same probabilities and metrics as TorchSharp within 1e-4, the export made once per run and redone when the run changes.
/// </summary>
public sealed class OnnxRuntimeTests(ITestOutputHelper output) : IDisposable
{
    private const double Tolerance = 1e-4;
    private readonly string _folder = Directory.CreateTempSubdirectory("sharptune-onnx-runtime-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static readonly TextExample[] Examples =
    [
        new("the film was wonderful", null, ["pos"], null),
        new("a dull and tedious evening", null, ["neg"], null),
        new("it was a film", "shown on tuesday", ["neu"], null),
        new("", null, ["neu"], null),
        new("wonderful wonderful wonderful but long, far too long for anyone's patience", null, ["pos"], null),
    ];

    // A run directory of our own: the cache is written into it, never into the fixtures.
    private string CopyOf(string source, string name)
    {
        string target = Path.Combine(_folder, name);
        Directory.CreateDirectory(target);
        foreach (string file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        return target;
    }

    [Fact]
    public void Evaluation_through_onnx_runtime_equals_torchsharp()
    {
        string run = CopyOf(HfFixtures.Directory("bert"), "bert");
        using var classifier = TextClassifier.Load(run);
        var torchResult = classifier.Evaluate(Examples);
        classifier.UseOnnxRuntime(new OnnxRuntimeModel(OnnxRuntimeModel.CachedExport(classifier, run)));
        var onnxResult = classifier.Evaluate(Examples);

        Assert.Equal(Path.Combine(run, "onnx", "model.onnx"), classifier.OnnxRuntime!.Path);
        double worst = torchResult.Probabilities.Zip(onnxResult.Probabilities, (a, b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max()).Max();
        output.WriteLine($"loss torch {torchResult.Loss:F6} onnx {onnxResult.Loss:F6}; max |Δ probability| {worst:E2}");
        Assert.True(worst <= Tolerance, $"probabilities differ by {worst:E3}");
        Assert.True(worst > 0, "bit-identical probabilities: ONNX Runtime did not compute them");
        Assert.Equal(torchResult.Loss, onnxResult.Loss, Tolerance);
        Assert.Equal(torchResult.Metrics["accuracy"], onnxResult.Metrics["accuracy"]);
    }

    [Fact]
    public void Tagging_through_onnx_runtime_equals_torchsharp()
    {
        string run = CopyOf(HfFixtures.TokenDirectory("distilbert"), "tagger");
        using var tagger = TokenTagger.Load(run);
        IReadOnlyList<string>[] sentences = [["John", "lives", "in", "Berlin"], ["a", "much", "longer", "sentence", "with", "more", "words", "in", "it"]];
        var torchTags = tagger.Predict(sentences);
        tagger.UseOnnxRuntime(new OnnxRuntimeModel(OnnxRuntimeModel.CachedExport(tagger, run)));
        var onnxTags = tagger.Predict(sentences);

        var pairs = torchTags.SelectMany(s => s).Zip(onnxTags.SelectMany(s => s)).ToList();
        Assert.Equal(13, pairs.Count);
        Assert.All(pairs, p => Assert.Equal(p.First.Tag, p.Second.Tag));
        double worst = pairs.Max(p => Math.Abs(p.First.Probability - p.Second.Probability));
        output.WriteLine($"max |Δ tag probability| {worst:E2}");
        Assert.True(worst <= Tolerance, $"tag probabilities differ by {worst:E3}");
        Assert.True(worst > 0, "bit-identical probabilities: ONNX Runtime did not compute them");
    }

    [Fact]
    public void The_export_is_made_once_and_again_when_the_run_changes()
    {
        string run = CopyOf(HfFixtures.Directory("roberta"), "cached");
        string path;
        using (var classifier = TextClassifier.Load(run)) path = OnnxRuntimeModel.CachedExport(classifier, run);
        DateTime first = File.GetLastWriteTimeUtc(path);
        Thread.Sleep(20);
        using (var classifier = TextClassifier.Load(run)) Assert.Equal(path, OnnxRuntimeModel.CachedExport(classifier, run));
        Assert.Equal(first, File.GetLastWriteTimeUtc(path));

        File.AppendAllText(Path.Combine(run, "config.json"), "\n"); // the run changed (as a retrained run's files would)
        using (var classifier = TextClassifier.Load(run)) OnnxRuntimeModel.CachedExport(classifier, run);
        Assert.True(File.GetLastWriteTimeUtc(path) > first, "the export was not redone after config.json changed");
    }

    [Fact]
    public void Cli_evaluate_with_runtime_onnx_reports_torchsharps_metrics()
    {
        string run = CopyOf(HfFixtures.Directory("electra"), "electra");
        string data = Path.Combine(_folder, "eval.csv");
        File.WriteAllLines(data, ["text,label", .. Examples.Select(e => $"\"{e.Text}\",{e.Labels[0]}")]);

        JsonObject Evaluate(string runtime)
        {
            var (console, writer) = TrainCliHarness.Console();
            int exit = SharpTune.Cli.CliApp.Run(["evaluate", "--model", run, "--data", data, "--format", "json", "--runtime", runtime], console);
            Assert.True(exit == 0, writer.ToString());
            return JsonNode.Parse(writer.ToString())!.AsObject();
        }
        var torchJson = Evaluate("torch");
        Assert.False(Directory.Exists(Path.Combine(run, "onnx")));
        var onnxJson = Evaluate("onnx");
        Assert.True(File.Exists(Path.Combine(run, "onnx", "model.onnx")));
        output.WriteLine($"loss torch {torchJson["loss"]} onnx {onnxJson["loss"]}");
        Assert.Equal(torchJson["loss"]!.GetValue<double>(), onnxJson["loss"]!.GetValue<double>(), Tolerance);
        Assert.Equal(torchJson["accuracy"]!.GetValue<double>(), onnxJson["accuracy"]!.GetValue<double>());
        Assert.NotEqual(torchJson["loss"]!.GetValue<double>(), onnxJson["loss"]!.GetValue<double>()); // ONNX Runtime computed it
    }

    [Theory]
    [InlineData(Pooling.Mean)]
    [InlineData(Pooling.None)]
    public void Embedding_through_onnx_runtime_equals_torchsharp(Pooling pooling)
    {
        string model = CopyOf(HfFixtures.Directory("roberta"), "embed-" + pooling);
        using var encoder = PretrainedEncoder.Load(model);
        var embedder = new Embedder(encoder, new EmbedderOptions { Pooling = pooling, BatchSize = 2 });
        string[] texts = ["a short one", "a somewhat longer text with more words in it", "", "middle length text"];
        var torchRows = embedder.Embed(texts).SelectMany(e => e.Rows).ToList();
        using var onnx = new OnnxRuntimeModel(OnnxRuntimeModel.CachedExport(encoder.Model, model));
        Assert.Equal("last_hidden_state", onnx.Output);
        Assert.Equal(Path.Combine(model, "onnx", "encoder.onnx"), onnx.Path);
        embedder.OnnxRuntime = onnx;
        var onnxRows = embedder.Embed(texts).SelectMany(e => e.Rows).ToList();

        Assert.Equal(torchRows.Count, onnxRows.Count);
        double worst = torchRows.Zip(onnxRows, (a, b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max()).Max();
        output.WriteLine($"{pooling}: {torchRows.Count} rows, max |Δ| {worst:E2}");
        Assert.True(worst <= Tolerance, $"embeddings differ by {worst:E3}");
        Assert.True(worst > 0, "bit-identical embeddings: ONNX Runtime did not compute them");
    }

    [Fact]
    public void Cli_embed_with_runtime_onnx_prints_torchsharps_vector()
    {
        string model = CopyOf(HfFixtures.Directory("bert"), "embed-cli");
        float[] Embed(string runtime)
        {
            var (console, writer) = TrainCliHarness.Console();
            int exit = SharpTune.Cli.CliApp.Run(["embed", "--model", model, "--text", "hello world", "--format", "json", "--runtime", runtime], console);
            Assert.True(exit == 0, writer.ToString());
            return JsonNode.Parse(writer.ToString())!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        }
        float[] torchVector = Embed("torch"), onnxVector = Embed("onnx");
        Assert.True(File.Exists(Path.Combine(model, "onnx", "encoder.onnx")));
        Assert.Equal(torchVector.Length, onnxVector.Length);
        Assert.True(torchVector.Zip(onnxVector, (a, b) => Math.Abs(a - b)).Max() <= Tolerance);
    }

    [Fact]
    public void Cli_evaluate_runs_a_given_int8_export_of_a_tagger_and_refuses_an_export_of_something_else()
    {
        string run = CopyOf(HfFixtures.TokenDirectory("distilbert"), "tagger-int8");
        string data = Path.Combine(_folder, "tagged.conll");
        File.WriteAllLines(data, ["John B-PER", "lives O", "in O", "Berlin B-LOC", "", "a O", "much O", "longer O", "sentence O", "in O", "Paris B-LOC", ""]);
        string int8 = Path.Combine(_folder, "tagger.int8.onnx");
        using (var tagger = TokenTagger.Load(run)) tagger.ExportOnnx(int8, new OnnxExportOptions(OnnxWeightFormat.Int8));

        (int Exit, string Output, string Errors) Evaluate(params string[] flags)
        {
            var (console, writer) = TrainCliHarness.Console();
            var (errors, errorWriter) = TrainCliHarness.Console();
            int exit = SharpTune.Cli.CliApp.Run(["evaluate", "--model", run, "--data", data, "--format", "json", .. flags], console, errors);
            return (exit, writer.ToString(), errorWriter.ToString());
        }
        var torch = Evaluate("--runtime", "torch");
        var quantised = Evaluate("--runtime", "onnx", "--onnx", int8);
        Assert.True(torch.Exit == 0 && quantised.Exit == 0, torch.Errors + quantised.Errors);
        Assert.False(Directory.Exists(Path.Combine(run, "onnx"))); // the given file ran, no float32 export was made
        double torchLoss = JsonNode.Parse(torch.Output)!["loss"]!.GetValue<double>(), int8Loss = JsonNode.Parse(quantised.Output)!["loss"]!.GetValue<double>();
        output.WriteLine($"token loss torch {torchLoss} int8 {int8Loss}");
        Assert.NotEqual(torchLoss, int8Loss);
        Assert.Equal(torchLoss, int8Loss, 0.05);

        string encoder = Path.Combine(_folder, "encoder.onnx");
        using (var bare = PretrainedEncoder.Load(HfFixtures.Directory("distilbert"))) OnnxExporter.Export(bare.Model, encoder);
        var refused = Evaluate("--runtime", "onnx", "--onnx", encoder);
        Assert.Equal(1, refused.Exit);
        Assert.Contains($"{encoder}: the model computes 'last_hidden_state', not 'logits'", refused.Errors);

        string sequence = Path.Combine(_folder, "sequence.onnx");
        using (var classifier = TaskModel.Load(HfFixtures.Directory("distilbert"))) classifier.ExportOnnx(sequence);
        refused = Evaluate("--runtime", "onnx", "--onnx", sequence);
        Assert.Equal(1, refused.Exit);
        Assert.Contains($"{sequence}: its logits have 3 values per example but the model has 5 outputs", refused.Errors);

        refused = Evaluate("--onnx", int8);
        Assert.Equal(1, refused.Exit);
        Assert.Contains("--onnx FILE runs that file in ONNX Runtime; it goes with --runtime onnx", refused.Errors);
    }

    [Fact]
    public void Cli_runtime_auto_chooses_onnx_for_float32_and_torch_for_bf16_and_says_which()
    {
        string run = CopyOf(HfFixtures.Directory("electra"), "auto");
        string data = Path.Combine(_folder, "auto.csv");
        File.WriteAllLines(data, ["text,label", .. Examples.Select(e => $"\"{e.Text}\",{e.Labels[0]}")]);
        JsonObject Evaluate(params string[] flags)
        {
            var (console, writer) = TrainCliHarness.Console();
            int exit = SharpTune.Cli.CliApp.Run(["evaluate", "--model", run, "--data", data, "--format", "json", .. flags], console);
            Assert.True(exit == 0, writer.ToString());
            return JsonNode.Parse(writer.ToString())!.AsObject();
        }
        var bf16 = Evaluate("--runtime", "auto", "--precision", "bf16");
        Assert.Equal("torch (auto: --precision bf16 runs in TorchSharp)", bf16["runtime"]!.GetValue<string>());
        Assert.False(Directory.Exists(Path.Combine(run, "onnx")));

        var torch = Evaluate("--runtime", "torch");
        Assert.Null(torch["runtime"]); // an explicit runtime needs no explanation
        var auto = Evaluate("--runtime", "auto");
        Assert.StartsWith("onnx (auto: ONNX Runtime on ", auto["runtime"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(run, "onnx", "model.onnx")));
        Assert.Equal(torch["loss"]!.GetValue<double>(), auto["loss"]!.GetValue<double>(), Tolerance);
        Assert.NotEqual(torch["loss"]!.GetValue<double>(), auto["loss"]!.GetValue<double>()); // ONNX Runtime computed it

        var (tableConsole, tableWriter) = TrainCliHarness.Console();
        Assert.Equal(0, SharpTune.Cli.CliApp.Run(["predict", "--model", run, "--text", "the film", "--runtime", "auto"], tableConsole));
        Assert.Contains("Runtime: onnx (auto: ONNX Runtime on ", tableWriter.ToString());
    }

    [Theory]
    [InlineData(new[] { "--runtime", "tpu" }, "--runtime 'tpu'")]
    [InlineData(new[] { "--runtime", "onnx", "--precision", "bf16" }, "--precision bf16 does not apply to --runtime onnx")]
    public void Cli_refuses_a_bad_runtime_combination_naming_the_flags(string[] flags, string message)
    {
        string run = CopyOf(HfFixtures.Directory("bert"), "refused");
        var (console, _) = TrainCliHarness.Console();
        var (errors, errorWriter) = TrainCliHarness.Console();
        int exit = SharpTune.Cli.CliApp.Run(["predict", "--model", run, "--text", "hello", .. flags], console, errors);
        Assert.Equal(1, exit);
        Assert.Contains(message, errorWriter.ToString());
    }
}
