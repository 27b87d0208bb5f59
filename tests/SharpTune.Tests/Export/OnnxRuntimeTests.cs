using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Export;
using SharpTune.Inference;
using SharpTune.Models;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Fixtures;
using SharpTune.Tests.Inference;
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

    // The shared cache of exports of directories SharpTune did not write (HF checkpoints, hub snapshots), for these tests.
    private string CacheRoot => Path.Combine(_folder, "cache");

    // A copy of a Hugging Face fixture: a directory SharpTune did not write.
    private string CopyOf(string source, string name)
    {
        string target = Path.Combine(_folder, name);
        Directory.CreateDirectory(target);
        foreach (string file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        return target;
    }

    // A run directory of SharpTune's own (the fixture saved by TaskModel.Save, with sharptune.json): the cache is written into it.
    private string RunOf(string source, string name)
    {
        string target = Path.Combine(_folder, name);
        using (var model = TaskModel.Load(source)) model.Save(target);
        return target;
    }

    [Fact]
    public void Evaluation_through_onnx_runtime_equals_torchsharp()
    {
        string run = RunOf(HfFixtures.Directory("bert"), "bert");
        using var classifier = TextClassifier.Load(run);
        var torchResult = classifier.Evaluate(Examples);
        classifier.UseOnnxRuntime(new OnnxRuntimeModel(OnnxRuntimeModel.CachedExport(classifier, run).Path));
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
        tagger.UseOnnxRuntime(new OnnxRuntimeModel(OnnxRuntimeModel.CachedExport(tagger, run, cacheRoot: CacheRoot).Path));
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
        string run = RunOf(HfFixtures.Directory("roberta"), "cached");
        CachedOnnxExport export;
        using (var classifier = TextClassifier.Load(run)) export = OnnxRuntimeModel.CachedExport(classifier, run, cacheRoot: CacheRoot);
        Assert.Equal(Path.Combine(run, "onnx", "model.onnx"), export.Path);
        Assert.False(Directory.Exists(CacheRoot)); // a run of SharpTune's own keeps its export
        DateTime first = File.GetLastWriteTimeUtc(export.Path);
        Thread.Sleep(20);
        using (var classifier = TextClassifier.Load(run)) Assert.Equal(export, OnnxRuntimeModel.CachedExport(classifier, run, cacheRoot: CacheRoot));
        Assert.Equal(first, File.GetLastWriteTimeUtc(export.Path));

        File.AppendAllText(Path.Combine(run, "config.json"), "\n"); // the run changed (as a retrained run's files would)
        using (var classifier = TextClassifier.Load(run)) OnnxRuntimeModel.CachedExport(classifier, run, cacheRoot: CacheRoot);
        Assert.True(File.GetLastWriteTimeUtc(export.Path) > first, "the export was not redone after config.json changed");
    }

    [Theory]
    [InlineData("bert")]
    [InlineData("roberta")]
    [InlineData("xlm-roberta")]
    [InlineData("distilbert")]
    [InlineData("electra")]
    [InlineData("deberta-v2")]
    public void A_cached_export_records_how_far_it_is_from_torchsharp(string architecture)
    {
        string run = RunOf(HfFixtures.Directory(architecture), "check-" + architecture);
        using var classifier = TextClassifier.Load(run);
        CachedOnnxExport export = OnnxRuntimeModel.CachedExport(classifier, run);
        var stamp = JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(export.Path, ".source.json")))!;
        output.WriteLine($"{architecture}: max |Δ logit| on the check batch {export.MaxDifference:E2}");
        Assert.Equal(export.MaxDifference, stamp["max_abs_difference"]!.GetValue<double>());
        Assert.InRange(export.MaxDifference, 1e-12, OnnxRuntimeModel.Agreement); // ONNX Runtime computed it, and agrees

        // The same comparison, made independently on real text: the recorded figure is of the same order.
        var torchProbabilities = classifier.Evaluate(Examples).Probabilities;
        classifier.UseOnnxRuntime(new OnnxRuntimeModel(export.Path));
        var onnxProbabilities = classifier.Evaluate(Examples).Probabilities;
        double worst = torchProbabilities.Zip(onnxProbabilities, (a, b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max()).Max();
        Assert.True(worst <= OnnxRuntimeModel.Agreement, $"{architecture}: probabilities differ by {worst:E3}");
    }

    [Fact]
    public void Exports_of_directories_sharptune_did_not_write_go_to_the_cache_root()
    {
        // A Hugging Face checkpoint: nothing is written into it.
        string checkpoint = CopyOf(HfFixtures.Directory("bert"), "hf-checkpoint");
        string[] before = Directory.GetFileSystemEntries(checkpoint);
        CachedOnnxExport export;
        using (var classifier = TextClassifier.Load(checkpoint)) export = OnnxRuntimeModel.CachedExport(classifier, checkpoint, cacheRoot: CacheRoot);
        Assert.StartsWith(Path.Combine(CacheRoot, "onnx") + Path.DirectorySeparatorChar, export.Path);
        Assert.Equal(before, Directory.GetFileSystemEntries(checkpoint));

        // A SharpTune run in a hub cache snapshot (…/models--org--name/snapshots/<commit>): not ours to write into either.
        string snapshot = Path.Combine(_folder, "hub", "models--org--run", "snapshots", "0123456789abcdef0123456789abcdef01234567");
        Directory.CreateDirectory(Path.GetDirectoryName(snapshot)!);
        Directory.Move(RunOf(HfFixtures.Directory("bert"), "pushed-run"), snapshot);
        using (var classifier = TextClassifier.Load(snapshot)) export = OnnxRuntimeModel.CachedExport(classifier, snapshot, cacheRoot: CacheRoot);
        Assert.StartsWith(Path.Combine(CacheRoot, "onnx") + Path.DirectorySeparatorChar, export.Path);
        Assert.False(Directory.Exists(Path.Combine(snapshot, "onnx")));

        // A run whose onnx/ cannot be made (here a file is in its place): the cache root, and the run is left as it was.
        string run = RunOf(HfFixtures.Directory("electra"), "blocked");
        File.WriteAllText(Path.Combine(run, "onnx"), "not a directory");
        using (var classifier = TextClassifier.Load(run)) export = OnnxRuntimeModel.CachedExport(classifier, run, cacheRoot: CacheRoot);
        Assert.StartsWith(Path.Combine(CacheRoot, "onnx") + Path.DirectorySeparatorChar, export.Path);
        Assert.Equal("not a directory", File.ReadAllText(Path.Combine(run, "onnx")));
    }

    [Fact]
    public void Cli_evaluate_with_runtime_onnx_reports_torchsharps_metrics()
    {
        string run = RunOf(HfFixtures.Directory("electra"), "electra");
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
        using var onnx = new OnnxRuntimeModel(OnnxRuntimeModel.CachedExport(encoder.Model, model, CacheRoot).Path);
        Assert.Equal("last_hidden_state", onnx.Output);
        Assert.StartsWith(Path.Combine(CacheRoot, "onnx"), onnx.Path); // a Hugging Face directory is not SharpTune's to write into
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
        // A Hugging Face directory: the export goes to the user's cache (SHARPTUNE_HOME), keyed by the model's files.
        string model = CopyOf(HfFixtures.Directory("bert"), "embed-cli");
        string[] before = Directory.GetFileSystemEntries(model);
        float[] Embed(string runtime)
        {
            var (console, writer) = TrainCliHarness.Console();
            int exit = SharpTune.Cli.CliApp.Run(["embed", "--model", model, "--text", "hello world", "--format", "json", "--runtime", runtime], console);
            Assert.True(exit == 0, writer.ToString());
            return JsonNode.Parse(writer.ToString())!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        }
        float[] torchVector = Embed("torch"), onnxVector = Embed("onnx");
        Assert.Equal(before, Directory.GetFileSystemEntries(model));
        Assert.Equal(torchVector.Length, onnxVector.Length);
        Assert.NotEqual(torchVector, onnxVector); // ONNX Runtime computed it
        Assert.True(torchVector.Zip(onnxVector, (a, b) => Math.Abs(a - b)).Max() <= Tolerance);
    }

    [Fact]
    public void Cli_embed_data_runs_in_onnx_runtime_by_default_and_a_single_text_in_torchsharp()
    {
        // A Hugging Face directory: the export goes to the user's cache (SHARPTUNE_HOME), keyed by the model's files.
        string model = CopyOf(HfFixtures.Directory("distilbert"), "embed-auto");
        string data = Path.Combine(_folder, "corpus.csv");
        // 20 texts of about 300 characters: a file of about 6,000 bytes, estimated at 1,500 tokens (above auto's 1,024).
        string[] texts = [.. Enumerable.Range(0, 20).Select(i => $"text number {i} with {new string('x', i % 7 + 1)} in it " + string.Join(' ', Enumerable.Repeat("and more words", 20)))];
        File.WriteAllLines(data, ["text", .. texts]);
        string Run(params string[] args)
        {
            var (console, writer) = TrainCliHarness.Console();
            int exit = SharpTune.Cli.CliApp.Run(["embed", "--model", model, .. args], console);
            Assert.True(exit == 0, writer.ToString());
            return writer.ToString();
        }
        string auto = Run("--data", data, "--output", Path.Combine(_folder, "auto.npy"));
        Assert.Contains("Runtime: onnx (auto: ONNX Runtime on ", auto);
        Run("--data", data, "--output", Path.Combine(_folder, "torch.npy"), "--runtime", "torch");
        float[][] onnxRows = CorpusEmbedderTests.ReadNpy(Path.Combine(_folder, "auto.npy")).Rows, torchRows = CorpusEmbedderTests.ReadNpy(Path.Combine(_folder, "torch.npy")).Rows;
        double worst = torchRows.Zip(onnxRows, (a, b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max()).Max();
        output.WriteLine($"embed --data, 20 texts: max |Δ| onnx against torch {worst:E2}");
        Assert.Equal(20, onnxRows.Length);
        Assert.InRange(worst, 1e-12, Tolerance); // ONNX Runtime computed them, and agrees

        // One text (TorchSharp, unpadded): the same vector within 1e-5.
        float[] vector = JsonNode.Parse(Run("--text", texts[3], "--format", "json"))!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        Assert.InRange(torchRows[3].Zip(vector, (x, y) => Math.Abs(x - y)).Max(), 0, 1e-5);
    }

    [Fact]
    public void Cli_evaluate_runs_a_given_int8_export_of_a_tagger_and_refuses_an_export_of_something_else()
    {
        string run = RunOf(HfFixtures.TokenDirectory("distilbert"), "tagger-int8");
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

        var byDefault = Evaluate("--onnx", int8); // --runtime auto runs a given export
        Assert.True(byDefault.Exit == 0, byDefault.Errors);
        Assert.Equal(int8Loss, JsonNode.Parse(byDefault.Output)!["loss"]!.GetValue<double>());
        refused = Evaluate("--onnx", int8, "--runtime", "torch");
        Assert.Equal(1, refused.Exit);
        Assert.Contains("--onnx FILE runs that file in ONNX Runtime; it goes with --runtime onnx or auto", refused.Errors);
    }

    [Fact]
    public void Cli_runtime_auto_is_the_default_chooses_onnx_for_float32_and_torch_for_bf16_and_says_which()
    {
        string run = RunOf(HfFixtures.Directory("electra"), "auto");
        string data = Path.Combine(_folder, "auto.csv"), few = Path.Combine(_folder, "few.csv");
        string[] rows = [.. Examples.Select(e => $"\"{e.Text}\",{e.Labels[0]}")];
        // 40 texts of 64 tokens (the fixture's longest input) and more: about 2,560 tokens, above auto's 1,024.
        string longText = string.Join(" and ", Enumerable.Repeat("a dull and tedious evening at the film", 8));
        File.WriteAllLines(data, ["text,label", .. Enumerable.Range(0, 40).Select(i => $"\"{i} {longText}\",{Examples[i % 3].Labels[0]}")]);
        // 3 short texts: (22 + 3) / 4 + 2 = 8, (26 + 3) / 4 + 2 = 9 and (13 + 3) / 4 + 2 = 6 estimated tokens, 23 in all.
        File.WriteAllLines(few, ["text,label", .. rows.Take(3)]);
        JsonObject Evaluate(params string[] flags) => EvaluateFile(data, flags);
        JsonObject EvaluateFile(string file, params string[] flags)
        {
            var (console, writer) = TrainCliHarness.Console();
            int exit = SharpTune.Cli.CliApp.Run(["evaluate", "--model", run, "--data", file, "--format", "json", .. flags], console);
            Assert.True(exit == 0, writer.ToString());
            return JsonNode.Parse(writer.ToString())!.AsObject();
        }
        var fewTexts = EvaluateFile(few);
        Assert.Equal("torch (auto: about 23 tokens: below 1024, opening an ONNX Runtime session costs more time than it saves)", fewTexts["runtime"]!.GetValue<string>());
        var bf16 = Evaluate("--precision", "bf16");
        Assert.Equal("torch (auto: precision bf16 runs in TorchSharp)", bf16["runtime"]!.GetValue<string>());
        Assert.False(Directory.Exists(Path.Combine(run, "onnx")));

        var torch = Evaluate("--runtime", "torch");
        Assert.Equal("torch (asked for)", torch["runtime"]!.GetValue<string>());
        var auto = Evaluate(); // --runtime auto is the default
        string modelPath = Path.Combine(run, "onnx", "model.onnx");
        Assert.StartsWith($"onnx (auto: ONNX Runtime on {modelPath}, within ", auto["runtime"]!.GetValue<string>());
        Assert.True(File.Exists(modelPath));
        Assert.Equal(torch["loss"]!.GetValue<double>(), auto["loss"]!.GetValue<double>(), Tolerance);
        Assert.NotEqual(torch["loss"]!.GetValue<double>(), auto["loss"]!.GetValue<double>()); // ONNX Runtime computed it

        // One short text: TorchSharp, whose forward pass takes less than opening an ONNX Runtime session.
        var (tableConsole, tableWriter) = TrainCliHarness.Console();
        Assert.Equal(0, SharpTune.Cli.CliApp.Run(["predict", "--model", run, "--text", "the film"], tableConsole));
        Assert.Contains("Runtime: torch (auto: about 4 tokens: below 1024", tableWriter.ToString());

        // An export found too far from TorchSharp when it was made is not chosen (the stamp records the difference).
        string stampPath = Path.ChangeExtension(modelPath, ".source.json");
        var stamp = JsonNode.Parse(File.ReadAllText(stampPath))!.AsObject();
        stamp["max_abs_difference"] = 0.5;
        File.WriteAllText(stampPath, stamp.ToJsonString());
        var refused = Evaluate();
        Assert.Equal($"torch (auto: the export {modelPath} differs from TorchSharp by 5.0e-1 (more than 1e-4) on its check batch)", refused["runtime"]!.GetValue<string>());
        Assert.Equal(torch["loss"]!.GetValue<double>(), refused["loss"]!.GetValue<double>());
    }

    [Theory]
    [InlineData(new[] { "--runtime", "tpu" }, "--runtime 'tpu'")]
    [InlineData(new[] { "--runtime", "onnx", "--precision", "bf16" }, "--precision bf16 does not apply to --runtime onnx")]
    [InlineData(new[] { "--runtime", "onnx", "--device", "cuda" }, "--device cuda does not apply to --runtime onnx")]
    [InlineData(new[] { "--label-column", "y" }, "--label-column: predict reads no labels")]
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
