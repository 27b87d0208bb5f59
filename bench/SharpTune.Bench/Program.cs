// SharpTune speed benchmark: one table, each figure the median of several timed runs after warm-up, with the
// ONNX Runtime peer measured in the same process. Writes bench/RESULTS.md. Usage:
//   dotnet run -c Release --project bench/SharpTune.Bench [-- --quick] [--out PATH]
//   (--only-inference: the matmul and inference rows alone, printed; --only-waste: section 6 alone)
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>;
using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Native;
using SharpTune.Tokenization;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
bool quick = args.Contains("--quick");
string output = args.SkipWhile(a => a != "--out").Skip(1).FirstOrDefault() ?? Path.Combine(Bench.RepoRoot(), "bench", "RESULTS.md");
int runs = quick ? 3 : 7;
const int BatchSize = 32, SequenceLength = 128;

string libtorch = TorchRuntime.EnsureLoaded(); // sets libtorch's threads: the logical CPUs or $SHARPTUNE_THREADS
int threads = TorchRuntime.Threads;
var rows = new List<(string Figure, string Value, string Note)>();
void Row(string figure, string value, string note = "")
{
    rows.Add((figure, value, note));
    Console.WriteLine($"{figure,-52} {value,16}  {note}");
}
// The full spam training set of ../shared beside the repository when it is there, else the sample in data/.
string sharedSpam = Path.GetFullPath(Path.Combine(Bench.RepoRoot(), "..", "shared", "data", "spamassassin", "train.csv"));
string dataPath = File.Exists(sharedSpam) ? sharedSpam : Path.Combine(Bench.RepoRoot(), "data", "spam-sample", "train.csv");
LoadedData spam = TextDataset.Load(dataPath);
int frozenExamples = quick ? 128 : 256;
if (args.Contains("--only-waste")) // the section 6 figures alone, printed, RESULTS.md untouched
{
    Waste.MemoryOverSteps(Row, steps: int.Parse(args.SkipWhile(a => a != "--steps").Skip(1).FirstOrDefault() ?? "1000", CultureInfo.InvariantCulture));
    if (args.Contains("--memory")) return;
    Waste.FrozenFeatureCache(Row, PackagedModels.MiniLM(), spam.Examples, frozenExamples, SequenceLength);
    return;
}

// 0. Memory over 1,000 training steps, first: before the MiniLM and the other sections fill the process, so
// that the RSS is the trainer's own.
bool onlyInference = args.Contains("--only-inference"); // sections 1 and 2 alone, printed, RESULTS.md untouched
if (!onlyInference && !args.Contains("--profile") && !args.Contains("--train-rounds")) Waste.MemoryOverSteps(Row, steps: 1000);

// 1. Matmul roofline. Other processes may share the CPU, so every figure that is compared with another is
// measured in the same rounds (A, B, C, A, B, C, …): a burst of foreign load hits both sides alike.
var matrices = new Dictionary<ScalarType, (Tensor A, Tensor B)>();
foreach (ScalarType type in new[] { ScalarType.Float32, ScalarType.BFloat16 })
    matrices[type] = (torch.randn(4096, 384).to_type(type), torch.randn(384, 1536).to_type(type));
Action Matmul(ScalarType type) => () => { for (int i = 0; i < 5; i++) torch.matmul(matrices[type].A, matrices[type].B).Dispose(); };
double MatmulGflops(double seconds) => 2.0 * 4096 * 384 * 1536 * 5 / seconds / 1e9;
foreach (ScalarType type in args.Contains("--profile") ? [] : new[] { ScalarType.Float32, ScalarType.BFloat16 })
{
    using var a = torch.randn(2048, 2048).to_type(type);
    using var b = torch.randn(2048, 2048).to_type(type);
    double seconds = Bench.Median(runs, warmup: 1, () => torch.matmul(a, b).Dispose());
    Row($"matmul {Bench.Name(type)} [2048x2048]x[2048x2048]", $"{2.0 * 2048 * 2048 * 2048 / seconds / 1e9:F0} GFLOP/s");
}

// 2. Inference at 32 x 128: SharpTune fp32, bf16 (autocast), ONNX Runtime fp32 — the same weights.
string modelDir = PackagedModels.MiniLM();
HfModelDirectory dir = HfModelDirectory.Open(modelDir);
BertModel encoder = Bench.LoadEncoder(dir);
encoder.eval();
var tokenizer = BertTokenizer.FromDirectory(modelDir);
var texts = spam.Examples.Select(e => e.Text).ToList();
// A real batch: the first 32 emails long enough to fill 128 tokens, so there is no padding at all.
long[][] ids = texts.Select(t => tokenizer.Encode(t, maxLength: SequenceLength).InputIds).Where(x => x.Length == SequenceLength).Take(BatchSize).ToArray();
long[] flatIds = ids.SelectMany(x => x).ToArray();
using var inputIds = torch.tensor(flatIds, BatchSize, SequenceLength);
using var typeIds = torch.zeros(BatchSize, SequenceLength, ScalarType.Int64);
using var mask = torch.ones(BatchSize, SequenceLength, ScalarType.Int64);

if (args.Contains("--profile")) // the step profile alone, printed, RESULTS.md untouched
{
    using var profiled = new SequenceClassifier(encoder, new PooledHead(encoder.Config.HiddenSize, 2));
    using var targets = torch.tensor(Enumerable.Range(0, BatchSize).Select(i => (long)(i % 2)).ToArray());
    foreach (var phase in StepProfile.Run(profiled, inputIds, typeIds, mask, targets, runs))
        Console.WriteLine($"{phase.Name,-60} {string.Concat(phase.Milliseconds.Select(ms => $"{ms,9:F1}"))}  {phase.Note}");
    return;
}

Action Infer(Precision precision) => () =>
{
    using var scope = NewDisposeScope();
    using var noGrad = torch.no_grad();
    using var cast = Autocast.Enter(precision);
    encoder.call(inputIds, typeIds, mask);
};

// 3. Full fine-tuning: the Trainer's step (forward, loss, backward, gradient norm and clipping at 1.0, SharpTune's
// AdamW, zero_grad) at 32 x 128, and MFU against the matmul roofline measured in the same rounds.
double forwardFlops = Bench.ForwardFlops((BertConfig)encoder.Config, BatchSize, SequenceLength);
var classifier = new SequenceClassifier(encoder, new PooledHead(encoder.Config.HiddenSize, 2));
using var labels = torch.tensor(Enumerable.Range(0, BatchSize).Select(i => (long)(i % 2)).ToArray());
var fullPlan = SharpTune.Strategies.StrategyApplier.Apply(classifier, new SharpTune.Strategies.FullStrategy(), rates: new(2e-5));
using var optimizer = new GroupedAdamW(0.01);
optimizer.AddTrainable(fullPlan, new(2e-5), encoder.Config.NumHiddenLayers);
// The step as the Trainer takes it; libtorchDropout undoes a speed change, for its change row.
Action Train(Precision precision, bool libtorchDropout = false) => () =>
{
    FastDropout.UseLibTorch = libtorchDropout;
    using var scope = NewDisposeScope();
    Tensor logits;
    using (Autocast.Enter(precision)) logits = classifier.call(inputIds, typeIds, mask);
    Tensor loss = TaskType.SingleLabel.Loss(logits, labels);
    loss.backward();
    optimizer.ClipGradients(1.0, optimizer.GradientNorm());
    optimizer.Step();
    optimizer.ZeroGrad();
    FastDropout.UseLibTorch = false;
};
// The training rounds run in a child process of their own, as `sharptune train` does (in this process, after the
// inference section, the same bf16 step measured 5–10 % slower); the matmul roofline is measured in the same rounds.
Action[] TrainRounds() =>
[
    Train(Precision.Fp32), Train(Precision.Bf16), Matmul(ScalarType.Float32), Matmul(ScalarType.BFloat16),
    Train(Precision.Fp32, libtorchDropout: true), Train(Precision.Bf16, libtorchDropout: true),
];
if (args.Contains("--train-rounds")) // the child: median seconds of each action, then minor page faults per training step
{
    classifier.train();
    Train(Precision.Fp32)();
    Train(Precision.Bf16)();
    long faults = Bench.MinorFaults();
    double[] child = Bench.Interleaved(runs, TrainRounds());
    double perStep = (Bench.MinorFaults() - faults) / (4.0 * (runs + 1));
    Console.WriteLine("train-rounds " + string.Join(' ', child.Append(perStep).Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
    return;
}
encoder.eval();

string onnxPath = Path.Combine(Path.GetTempPath(), $"sharptune-bench-{Environment.ProcessId}.onnx");
PackagedResources.ExtractToFile(PackagedResources.MiniLMAssemblyPath, PackagedResources.MiniLMOnnx, onnxPath);
// SharpTune's own exports of the same encoder (sharptune export-onnx), float32 and int8.
string exportPath = Path.ChangeExtension(onnxPath, ".export.onnx"), int8Path = Path.ChangeExtension(onnxPath, ".int8.onnx");
SharpTune.Export.OnnxExporter.Export(encoder, exportPath);
SharpTune.Export.OnnxExporter.Export(encoder, int8Path, new SharpTune.Export.OnnxExportOptions(SharpTune.Export.OnnxWeightFormat.Int8));
double fp32Infer, bf16Infer, ortInfer, exportInfer, int8Infer;
var roofline = new Dictionary<ScalarType, double>();
using (var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL })
using (var session = new InferenceSession(onnxPath, options))
using (var exportSession = new InferenceSession(exportPath, options))
using (var int8Session = new InferenceSession(int8Path, options))
{
    int[] shape = [BatchSize, SequenceLength];
    var feeds = new Dictionary<string, long[]>
    {
        ["input_ids"] = flatIds,
        ["attention_mask"] = Enumerable.Repeat(1L, flatIds.Length).ToArray(),
        ["token_type_ids"] = new long[flatIds.Length],
    };
    List<NamedOnnxValue> Inputs(InferenceSession s) => s.InputMetadata.Keys
        .Select(name => NamedOnnxValue.CreateFromTensor(name, new DenseTensor(feeds[name], shape))).ToList();
    var (inputs, exportInputs, int8Inputs) = (Inputs(session), Inputs(exportSession), Inputs(int8Session));
    double[] t = Bench.Interleaved(runs, Matmul(ScalarType.Float32), Matmul(ScalarType.BFloat16),
        Infer(Precision.Fp32), Infer(Precision.Bf16), () => { using var results = session.Run(inputs); },
        () => { using var results = exportSession.Run(exportInputs); }, () => { using var results = int8Session.Run(int8Inputs); });
    roofline[ScalarType.Float32] = MatmulGflops(t[0]);
    roofline[ScalarType.BFloat16] = MatmulGflops(t[1]);
    (fp32Infer, bf16Infer, ortInfer, exportInfer, int8Infer) = (BatchSize / t[2], BatchSize / t[3], BatchSize / t[4], BatchSize / t[5], BatchSize / t[6]);
}
foreach (var (type, gflops) in roofline) Row($"matmul {Bench.Name(type)} [4096x384]x[384x1536]", $"{gflops:F0} GFLOP/s", "roofline for MFU (measured in the inference rounds)");
File.Delete(onnxPath);
File.Delete(exportPath);
File.Delete(int8Path);
Row($"inference SharpTune fp32 ({BatchSize}x{SequenceLength})", $"{fp32Infer:F1} samples/s", $"{fp32Infer / ortInfer:F2}x ORT fp32");
Row($"inference SharpTune bf16 ({BatchSize}x{SequenceLength})", $"{bf16Infer:F1} samples/s", $"{bf16Infer / ortInfer:F2}x ORT fp32");
Row($"inference ONNX Runtime fp32 ({BatchSize}x{SequenceLength})", $"{ortInfer:F1} samples/s", $"IntraOpNumThreads={threads}, ORT_ENABLE_ALL");
Row($"inference ONNX Runtime, SharpTune export fp32 ({BatchSize}x{SequenceLength})", $"{exportInfer:F1} samples/s", $"{exportInfer / ortInfer:F2}x ORT on the packaged export; sharptune export-onnx");
Row($"inference ONNX Runtime, SharpTune export int8 ({BatchSize}x{SequenceLength})", $"{int8Infer:F1} samples/s", $"{int8Infer / ortInfer:F2}x ORT fp32; --weights int8 (MatMulInteger)");

// bf16 numerics: last_hidden_state of the real batch against fp32.
using (var noGrad = torch.no_grad())
using (var scope = NewDisposeScope())
{
    Tensor reference = encoder.call(inputIds, typeIds, mask).LastHiddenState;
    Tensor mixed;
    using (Autocast.Enter(Precision.Bf16)) mixed = encoder.call(inputIds, typeIds, mask).LastHiddenState;
    double maxDiff = (mixed - reference).abs().max().item<float>();
    double cosine = nn.functional.cosine_similarity(mixed.flatten(0, 1), reference.flatten(0, 1), dim: 1).min().item<float>();
    double scale = reference.abs().max().item<float>();
    Row("bf16 vs fp32 last_hidden_state (the real batch)", $"max abs diff {maxDiff:F3}", $"min token cosine {cosine:F5}; max abs fp32 {scale:F2}");
}

if (onlyInference) return;

// Twice: with glibc's malloc left alone (SHARPTUNE_KEEP_FREED_MEMORY=0, for the malloc change row) and as SharpTune runs.
double[] TrainChild(string keepFreedMemory)
{
    var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
    foreach (string arg in new[] { Path.ChangeExtension(typeof(Bench).Assembly.Location, ".dll"), "--train-rounds" }.Concat(quick ? ["--quick"] : []))
        start.ArgumentList.Add(arg);
    start.Environment[TorchRuntime.KeepFreedMemoryVariable] = keepFreedMemory;
    using var child = Process.Start(start)!;
    string output = child.StandardOutput.ReadToEnd();
    child.WaitForExit();
    string line = output.Split('\n').SingleOrDefault(l => l.StartsWith("train-rounds ", StringComparison.Ordinal))
        ?? throw new InvalidOperationException($"the training child process failed (exit {child.ExitCode}):\n{output}");
    return line.Split(' ').Skip(1).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
}
double[] mallocDefault = TrainChild("0");
double[] trainTimes = TrainChild("1");
double fp32Step = trainTimes[0], bf16Step = trainTimes[1];
// MFU against the higher of the two rooflines this run measured (the inference rounds' and the training child's).
double trainRoofFp32 = Math.Max(roofline[ScalarType.Float32], MatmulGflops(trainTimes[2]));
double trainRoofBf16 = Math.Max(roofline[ScalarType.BFloat16], MatmulGflops(trainTimes[3]));
double stepFlops = 3 * forwardFlops;
Row($"train full FT fp32 ({BatchSize}x{SequenceLength})", $"{BatchSize / fp32Step:F1} samples/s",
    $"MFU {stepFlops / fp32Step / 1e9 / trainRoofFp32:P0} of fp32 matmul ({stepFlops / fp32Step / 1e9:F0} GFLOP/s); a child process of its own, as sharptune train");
Row($"train full FT bf16 ({BatchSize}x{SequenceLength})", $"{BatchSize / bf16Step:F1} samples/s",
    $"{fp32Step / bf16Step:F2}x fp32; MFU {stepFlops / bf16Step / 1e9 / trainRoofBf16:P0} of bf16 matmul ({stepFlops / bf16Step / 1e9:F0} GFLOP/s)");
// Each change's effect: the same step with the change undone, in the same rounds of the same child process.
var changes = new (string Change, int Index, string Before)[]
{
    ("dropout masks + attention by SharpTune", 4, "libtorch's dropout and scaled_dot_product_attention"),
};
foreach (var (change, index, description) in changes)
    foreach (var (name, before, after, roof) in new[] { ("fp32", trainTimes[index], fp32Step, trainRoofFp32), ("bf16", trainTimes[index + 1], bf16Step, trainRoofBf16) })
        Row($"  change: {change}, {name}", $"{BatchSize / before:F1} → {BatchSize / after:F1} samples/s",
            $"step {before * 1000:F0} → {after * 1000:F0} ms; MFU {stepFlops / before / 1e9 / roof:P0} → {stepFlops / after / 1e9 / roof:P0}; before: {description}");
foreach (var (name, before, after, roof) in new[] { ("fp32", mallocDefault[0], fp32Step, trainRoofFp32), ("bf16", mallocDefault[1], bf16Step, trainRoofBf16) })
    Row($"  change: freed memory kept by malloc, {name}", $"{BatchSize / before:F1} → {BatchSize / after:F1} samples/s",
        $"step {before * 1000:F0} → {after * 1000:F0} ms; MFU {stepFlops / before / 1e9 / roof:P0} → {stepFlops / after / 1e9 / roof:P0}; minor page faults per step {mallocDefault[^1]:F0} → {trainTimes[^1]:F0}; before: a child process with {TorchRuntime.KeepFreedMemoryVariable}=0");

classifier.train();
// 3b. Where a step's time goes.
List<StepProfile.Phase> profile = StepProfile.Run(classifier, inputIds, typeIds, mask, labels, runs);

// 4. Tokenization throughput on the spam training set (single thread, truncation at 512 as the CLI would not; all tokens counted).
var tokenizeTexts = quick ? texts.Take(2000).ToList() : texts;
long tokens = 0;
double tokenizeSeconds = Bench.Median(runs, warmup: 1, () =>
{
    long count = 0;
    foreach (string text in tokenizeTexts) count += tokenizer.TokenizeToIds(text).Length;
    tokens = count;
});
Row("tokenization (BertTokenizer, 1 thread)", $"{tokens / tokenizeSeconds / 1e6:F2} M tokens/s",
    $"{tokenizeTexts.Count} emails of {Path.GetFileName(Path.GetDirectoryName(dataPath))}/train.csv, {tokens} tokens");

// 5. Padding ratio at max length 128, batch 32, with and without length bucketing.
var encoded = texts.Select(t => tokenizer.Encode(t, maxLength: SequenceLength)).ToList();
var dataset = new TaskDataset(TaskType.SingleLabel, 2, encoded.Select(e => e.InputIds).ToList(),
    encoded.Select(e => e.TokenTypeIds).ToList(), labels: encoded.Select(_ => 0L).ToList());
var bucketed = new Batcher(dataset, BatchSize, bucketing: true);
var unbucketed = new Batcher(dataset, BatchSize, bucketing: false);
Row("padding ratio, no bucketing (padded/real tokens)", $"{unbucketed.PaddingRatio(unbucketed.Plan(42, 0)):F3}", $"{dataset.Count} examples, max length {SequenceLength}");
Row("padding ratio, length bucketing", $"{bucketed.PaddingRatio(bucketed.Plan(42, 0)):F3}", $"buckets of {Batcher.BucketBatches} batches");

// 6. No waste: the frozen strategy with and without its feature cache.
Waste.FrozenFeatureCache(Row, modelDir, spam.Examples, frozenExamples, SequenceLength);

// 7. Peak memory of the whole run.
Row("peak RSS (VmHWM)", $"{Bench.PeakRssMegabytes():F0} MB", "whole benchmark process");

string machine = $"{Bench.CpuModel()}, {threads} logical CPUs visible, {libtorch} / libtorch-cpu 2.10.0, torch threads {torch.get_num_threads()}";
var markdown = new StringBuilder();
string load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
markdown.AppendLine("# SharpTune benchmark").AppendLine();
markdown.AppendLine($"Command: `dotnet run -c Release --project bench/SharpTune.Bench{(quick ? " -- --quick" : "")}`  ");
markdown.AppendLine($"Machine: {machine}  ");
markdown.AppendLine($"Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; each figure is the median of {runs} runs after 1 warm-up run ({Bench.ClockName}); load average at the end {load} on {threads} CPUs (other processes share them)." +
    (Environment.GetEnvironmentVariable("MKL_ENABLE_INSTRUCTIONS") is { } mkl ? $" MKL_ENABLE_INSTRUCTIONS={mkl}." : "")).AppendLine();
markdown.AppendLine("| Figure | Value | Note |").AppendLine("|---|---:|---|");
foreach (var (figure, value, note) in rows) markdown.AppendLine($"| {figure} | {value} | {note} |");
markdown.AppendLine().AppendLine(Bench.FlopsNote((BertConfig)encoder.Config, BatchSize, SequenceLength, forwardFlops));
markdown.AppendLine().AppendLine($"## Step profile (full fine-tuning, {BatchSize}x{SequenceLength}, milliseconds per step)").AppendLine();
markdown.AppendLine("Medians over the same rounds. `step:` rows are phases timed inside real steps; `forward:`/`backward:` rows time each module kind alone " +
    "at the step's shapes with layer 0's weights, multiplied by how often a step runs it (their sum against the step's forward and backward shows what they cover).").AppendLine();
markdown.AppendLine("*before*: libtorch's dropout and attention (`nn.functional.dropout`, `scaled_dot_product_attention` with dropout); " +
    "*after*: SharpTune's (`FastDropout`, `Attention.ScaledDotProduct`) — in the same rounds.").AppendLine();
markdown.AppendLine($"| Phase | {string.Join(" | ", StepProfile.Columns.Select(c => c.Name + " ms"))} | Note |").AppendLine($"|---|{string.Concat(StepProfile.Columns.Select(_ => "---:|"))}---|");
foreach (var phase in profile) markdown.AppendLine($"| {phase.Name} | {string.Join(" | ", phase.Milliseconds.Select(ms => ms.ToString("F1")))} | {phase.Note} |");
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
File.WriteAllText(output, markdown.ToString());
Console.WriteLine($"wrote {output}");

internal static class Bench
{
    /// <summary>
    /// Median wall time in seconds of each action, run in rounds (each action once per round) after one warm-up round,
    /// so that foreign load on a shared machine falls on all of them alike.
    /// </summary>
    /// <summary>
    /// BENCH_CPU=1: time by the process's CPU time instead of the wall clock — for comparisons on a loaded machine, with
    /// SHARPTUNE_THREADS=1 (one libtorch thread; with more, idle threads' spinning would count).
    /// </summary>
    private static readonly bool CpuTime = Environment.GetEnvironmentVariable("BENCH_CPU") == "1";
    private static readonly Stopwatch Wall = Stopwatch.StartNew();

    /// <summary>Seconds on the benchmark's clock (wall, or CPU time with BENCH_CPU=1).</summary>
    public static double Now() => CpuTime ? Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds : Wall.Elapsed.TotalSeconds;

    /// <summary>Which clock <see cref="Now"/> reads, for the report.</summary>
    public static string ClockName => CpuTime ? "process CPU time (BENCH_CPU=1)" : "wall time";

    public static double[] Interleaved(int runs, params Action[] actions)
    {
        foreach (Action action in actions) action();
        var times = new double[actions.Length][];
        for (int a = 0; a < actions.Length; a++) times[a] = new double[runs];
        for (int r = 0; r < runs; r++)
            for (int a = 0; a < actions.Length; a++)
            {
                double start = Now();
                actions[a]();
                times[a][r] = Now() - start;
            }
        return times.Select(t => Median(t)).ToArray();
    }

    public static double Median(double[] times)
    {
        Array.Sort(times);
        int n = times.Length;
        return n % 2 == 1 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
    }

    /// <summary>Median wall time in seconds of <paramref name="runs"/> calls after <paramref name="warmup"/> untimed ones.</summary>
    public static double Median(int runs, int warmup, Action action)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            double start = Now();
            action();
            times[i] = Now() - start;
        }
        return Median(times);
    }

    public static BertModel LoadEncoder(HfModelDirectory dir)
    {
        var weights = dir.LoadWeights();
        var (model, _) = PretrainedEncoder.LoadEncoder(dir.Config, weights, dir.WeightsPath);
        foreach (var t in weights.Values) t.Dispose();
        return (BertModel)model;
    }

    // Matmul FLOPs of one forward pass (a multiply-add = 2 FLOPs):
    //   2·T·P_linear for the Linear layers (T = batch·sequence tokens, P_linear = weights of Q, K, V, attention
    //   output, intermediate and output dense per layer; embeddings are lookups, not matmuls),
    //   + 4·B·S²·H per layer for attention scores QKᵀ and the weighted sum with V,
    //   + 2·B·H² for the pooler. A training step is 3× a forward (backward = 2× forward).
    public static double ForwardFlops(BertConfig c, int batch, int sequence)
    {
        double h = c.HiddenSize, i = c.IntermediateSize, tokens = (double)batch * sequence;
        double linearPerLayer = 4 * h * h + 2 * h * i;
        double attentionPerLayer = 4.0 * batch * sequence * sequence * h;
        return c.NumHiddenLayers * (2 * tokens * linearPerLayer + attentionPerLayer) + 2 * batch * h * h;
    }

    public static string FlopsNote(BertConfig c, int batch, int sequence, double forwardFlops) =>
        $"MFU = achieved FLOP/s ÷ the [4096x384]x[384x1536] matmul rate of the same dtype. FLOPs of a training step = " +
        $"3 × forward; forward = L·(2·T·(4H² + 2·H·I) + 4·B·S²·H) + 2·B·H² (T = B·S tokens; Linear layers, attention " +
        $"scores and weighted sum, pooler) = {forwardFlops / 1e9:F1} GFLOP for L={c.NumHiddenLayers}, H={c.HiddenSize}, " +
        $"I={c.IntermediateSize}, B={batch}, S={sequence}. Element-wise work (GELU, LayerNorm, softmax, AdamW) is not counted.";

    /// <summary>Minor page faults of this process so far (/proc/self/stat, field 10).</summary>
    public static long MinorFaults() => long.Parse(File.ReadAllText("/proc/self/stat").Split(") ")[1].Split(' ')[7], CultureInfo.InvariantCulture);

    public static double PeakRssMegabytes()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        return Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;
    }

    public static string CpuModel()
    {
        string? model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        string flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "";
        string isa = string.Join(' ', new[] { "avx2", "avx512f", "avx512_bf16", "amx_bf16" }.Where(f => flags.Split(' ').Contains(f)));
        return $"{model?.Split(':', 2)[1].Trim() ?? "unknown CPU"} ({isa})";
    }

    public static string Name(ScalarType type) => type == ScalarType.BFloat16 ? "bf16" : "fp32";

    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "SharpTune.slnx"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }
}

internal static class Waste
{
    /// <summary>
    /// RSS after a 250-step warm-up and after step <paramref name="steps"/> of one Trainer.Fit (full fine-tuning of a
    /// small random BERT, batches of 16 × 8–32 tokens): per-step leaks show as growth.
    /// </summary>
    public static void MemoryOverSteps(Action<string, string, string> row, int steps)
    {
        const int Batch = 16, Warmup = 250, Early = 100;
        var config = new BertConfig
        {
            VocabSize = 1000, HiddenSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 512, MaxPositionEmbeddings = 64,
        };
        torch.manual_seed(1);
        using var model = new SequenceClassifier(new BertModel(config), HeadRegistry.Create("cls", config.HiddenSize, 2));
        var random = new Random(1);
        var ids = Enumerable.Range(0, steps * Batch).Select(_ =>
            new long[] { 2 }.Concat(Enumerable.Range(0, random.Next(6, 31)).Select(_ => (long)random.Next(5, 1000))).Append(3).ToArray()).ToList();
        var data = new TaskDataset(TaskType.SingleLabel, 2, ids, ids.Select(x => new long[x.Length]).ToList(),
            labels: ids.Select(x => x.Length % 2L).ToList());
        double early = 0, warm = 0, end = 0, warmManaged = 0, endManaged = 0;
        var probe = new StepProbe(step =>
        {
            if (step == Early) early = RssMegabytes();
            if (step == Warmup) (warm, warmManaged) = (RssMegabytes(), GC.GetTotalMemory(false) / 1048576.0);
            if (step == steps) (end, endManaged) = (RssMegabytes(), GC.GetTotalMemory(false) / 1048576.0);
            if (step % 250 == 0) Console.WriteLine($"  step {step}: RSS {RssMegabytes():F0} MB, managed {GC.GetTotalMemory(false) / 1048576.0:F0} MB");
        });
        // One libtorch thread: this is a memory figure, and tiny ops on two OpenMP threads crawl when other
        // processes share the CPUs (22x slower than one thread at load average 10 on 2 CPUs).
        int threads = TorchRuntime.Threads;
        TorchRuntime.Configure(1);
        var clock = Stopwatch.StartNew();
        try
        {
            new Trainer(model, new SharpTune.Strategies.FullStrategy(), new TrainingOptions { Epochs = 1, BatchSize = Batch, LearningRates = new(1e-4) }, probe).Fit(data);
        }
        finally
        {
            TorchRuntime.Configure(threads);
        }
        double growth = (end - warm) / warm;
        row($"RSS growth over {steps} training steps", $"{growth * 100:+0.0;-0.0} %",
            $"{warm:F0} MB after {Warmup} warm-up steps ({early:F0} MB after {Early}), {end:F0} MB at step {steps} " +
            $"(target ≤ 5 %; managed heap {warmManaged:F0} → {endManaged:F0} MB); Trainer.Fit, full FT of a random BERT L={config.NumHiddenLayers} " +
            $"H={config.HiddenSize}, batches of {Batch} × 8–32 tokens, 1 libtorch thread, {clock.Elapsed.TotalSeconds:F0} s");
    }

    /// <summary>
    /// The frozen strategy over <paramref name="count"/> spam emails that fill <paramref name="length"/> tokens, 10 epochs, mean head:
    /// one forward pass over the data vs training with the feature cache (first run, and again from disk) vs without it.
    /// </summary>
    public static void FrozenFeatureCache(Action<string, string, string> row, string modelDir, IReadOnlyList<TextExample> examples, int count, int length)
    {
        const int Epochs = 10, Batch = 32, Rounds = 3;
        var labels = LabelSet.FromTraining(examples);
        using var classifier = SharpTune.TextClassifier.Create(modelDir, "mean", labels, maxLength: length);
        var subset = examples.Where(e => classifier.Tokenizer.Encode(e.Text, e.TextPair, length).InputIds.Length == length).Take(count).ToList();
        TaskDataset data = classifier.Encode(subset);
        string cacheDir = Path.Combine(Path.GetTempPath(), $"sharptune-bench-features-{Environment.ProcessId}");
        double Time(Action action)
        {
            var clock = Stopwatch.StartNew();
            action();
            return clock.Elapsed.TotalSeconds;
        }
        double Fit(bool cache, bool disk) => Time(() => new Trainer(classifier.Model, new SharpTune.Strategies.FrozenStrategy(), new TrainingOptions
        {
            Epochs = Epochs, BatchSize = Batch, CacheFrozenFeatures = cache, DiskFeatureCache = disk, FeatureCacheDirectory = cacheDir,
        }).Fit(data));
        try
        {
            Evaluator.Predict(classifier.Model, data, Batch, CPU); // warm-up
            // Rounds of (forward pass, first run with a fresh cache) so that foreign load falls on both alike.
            var forwards = new double[Rounds];
            var colds = new double[Rounds];
            for (int r = 0; r < Rounds; r++)
            {
                forwards[r] = Time(() => Evaluator.Predict(classifier.Model, data, Batch, CPU));
                if (Directory.Exists(cacheDir)) Directory.Delete(cacheDir, recursive: true);
                colds[r] = Fit(cache: true, disk: true);
            }
            double forward = Bench.Median(forwards), cold = Bench.Median(colds);
            double warm = Bench.Median(Enumerable.Range(0, Rounds).Select(_ => Fit(cache: true, disk: true)).ToArray());
            double without = Fit(cache: false, disk: false);
            // The frozen path's encoding pass in bf16 against embed (mean pooling, bf16) over the same texts, in rounds.
            var embedder = new SharpTune.Inference.Embedder(classifier.Model.Encoder, classifier.Tokenizer,
                new SharpTune.Inference.EmbedderOptions { Precision = Precision.Bf16, MaxLength = length, BatchSize = Batch });
            var subsetTexts = subset.Select(e => e.Text).ToList();
            double[] encode = Bench.Interleaved(Rounds,
                () => FeatureCache.Build(classifier.Model, data, Batch, CPU, precision: Precision.Bf16).Dispose(),
                () => embedder.Embed(subsetTexts));
            string shape = $"{data.Count}x{length}";
            row($"frozen: one forward pass over the data ({shape})", $"{forward:F1} s", $"Evaluator.Predict, batch {Batch}, fp32");
            row($"frozen: {Epochs} epochs with feature cache, first run", $"{cold:F1} s",
                $"{cold / forward:F2}x one forward pass (target ≤ 1.3x); {without / cold:F1}x faster than without; encodes once and writes the cache");
            row($"frozen: {Epochs} epochs with feature cache, from disk", $"{warm:F1} s",
                $"{warm / forward:F2}x one forward pass; {without / warm:F0}x faster than without (target ≥ 10x)");
            row($"frozen: {Epochs} epochs without feature cache", $"{without:F1} s", $"{without / forward:F1}x one forward pass; encoder runs every epoch (one run; the others are medians of {Rounds})");
            row($"frozen: feature-cache encoding, bf16 ({shape})", $"{data.Count / encode[0]:F1} samples/s",
                $"{encode[0] / encode[1]:F2}x the time of embed bf16 on the same texts ({data.Count / encode[1]:F1} samples/s; embed also tokenizes)");
        }
        finally
        {
            if (Directory.Exists(cacheDir)) Directory.Delete(cacheDir, recursive: true);
        }
    }

    private static double RssMegabytes()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        return Environment.WorkingSet / 1048576.0;
    }

    private sealed class StepProbe(Action<int> onStep) : IProgress<TrainingEvent>
    {
        public void Report(TrainingEvent value)
        {
            if (value is StepEvent step) onStep(step.Step);
        }
    }
}
