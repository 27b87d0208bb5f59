using System.Text.RegularExpressions;
using SharpTune.Models;
using SharpTune.Native;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

/// <summary>Runs only where libtorch sees a CUDA device (the CUDA build, -p:SharpTuneTorch=cuda, on a machine with a GPU).</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        TorchRuntime.EnsureLoaded();
        if (!torch.cuda.is_available())
            Skip = "needs a CUDA GPU: torch.cuda.is_available() is false here (CPU libtorch or no GPU; build with -p:SharpTuneTorch=cuda).";
    }
}

/// <summary>
/// Every tensor lives on the model's device. libtorch's meta device cannot run the encoder (embedding and max have no
/// meta kernel in C++ libtorch), so the guard here is a scan of the library's source: every tensor factory call names a
/// device, or is listed below with the reason it may create on the CPU. The CUDA tests at the end run the real thing
/// where a GPU exists.
/// </summary>
public sealed class DevicePlacementTests
{
    // Tensor factories; "x_like" copies its argument's device and is not listed.
    private static readonly Regex Factory = new(
        @"(?:(?<![\w.])|(?<=\b(?:torch|Scalars)\.))(zeros|ones|empty|full|arange|Arange|tensor|from_array|as_tensor|randn|rand|randint|randperm|eye|linspace|logspace|normal)\s*\(",
        RegexOptions.Compiled);

    private static readonly Regex StringLiteral = new(@"\$?@?""(?:[^""\\]|\\.)*""", RegexOptions.Compiled);

    // (file under src/SharpTune, text of the line, why the CPU is right there).
    private static readonly (string File, string Line, string Why)[] OnCpuByDesign =
    [
        ("Models/FastDropout.cs", "torch.randint(long.MaxValue, [1]", "a seed read back as a number"),
        ("Models/FastDropout.cs", "torch.empty(shape, type)", "the mask is filled by C# on the CPU and moved with mask.to(device)"),
        ("Heads/LinearHead.cs", "torch.empty(outputs, hiddenSize)", "a parameter of a module under construction: moves with the model"),
        ("Heads/LinearHead.cs", "torch.zeros(outputs)", "a parameter of a module under construction: moves with the model"),
        ("Checkpoints/OnnxImporter.cs", "torch.empty(onnx.Dims", "a loaded tensor: copy_ into the model's parameters moves it"),
        ("Checkpoints/OnnxImporter.cs", "torch.randn(expected[", "a loaded tensor: copy_ into the model's parameters moves it"),
        ("Checkpoints/OnnxImporter.cs", "torch.zeros(expected[", "a loaded tensor: copy_ into the model's parameters moves it"),
        ("Checkpoints/PickleCheckpoint.cs", "torch.empty([storage.Numel]", "a loaded tensor: copy_ into the model's parameters moves it"),
        ("Checkpoints/SafeTensors.cs", "torch.empty(info.Shape", "a loaded tensor: copy_ into the model's parameters moves it"),
        ("Native/TorchRuntime.cs", "torch.zeros(1)", "the probe that loads libtorch"),
        ("Tokenization/EncodedBatch.cs", "tensor(values, shape, ScalarType.Int64)", "made on the CPU, then moved to the device argument on the next line"),
        ("Training/Batcher.cs", "empty(0)", "batches are made on the CPU by the prefetch thread; the trainer and evaluator move them"),
        ("Training/TaskType.cs", "tensor(indices.Select(i => data.Labels![i])", "targets are part of a CPU batch; moved with batch.Targets.to(device)"),
        ("Training/TaskType.cs", "tensor(indices.SelectMany(i => data.Targets![i])", "targets are part of a CPU batch; moved with batch.Targets.to(device)"),
        ("Training/TaskType.cs", "tensor(indices.Select(i => data.Targets![i][0])", "targets are part of a CPU batch; moved with batch.Targets.to(device)"),
        ("Training/TaskType.cs", "tensor(flat, indices.Length, longest)", "targets are part of a CPU batch; moved with batch.Targets.to(device)"),
        ("Export/OnnxRuntimeModel.cs", "torch.tensor(output.ToArray()", "ONNX Runtime's output is on the CPU; the evaluator moves the logits to its device"),
    ];

    [Fact]
    public void Every_tensor_factory_in_the_library_names_a_device_or_says_why_the_CPU_is_right()
    {
        string src = Path.Combine(SharpTune.Fuzz.FuzzEngine.FindRepoRoot(AppContext.BaseDirectory), "src", "SharpTune");
        var unexplained = new List<string>();
        var used = new HashSet<int>();
        foreach (string file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(src, file).Replace('\\', '/');
            if (relative.StartsWith("obj/", StringComparison.Ordinal) || relative.StartsWith("bin/", StringComparison.Ordinal)) continue;
            string[] lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                string code = Code(lines[i]);
                foreach (Match call in Factory.Matches(code))
                {
                    if (code[call.Index..].Contains("device", StringComparison.Ordinal)) continue; // device: x, .to(device)
                    int listed = Array.FindIndex(OnCpuByDesign, e => e.File == relative && lines[i].Contains(e.Line, StringComparison.Ordinal));
                    if (listed >= 0) used.Add(listed);
                    else unexplained.Add($"{relative}:{i + 1}: {lines[i].Trim()}");
                }
            }
        }
        Assert.True(unexplained.Count == 0, "tensors created without a device (give one, or add the line to OnCpuByDesign with the reason):\n" + string.Join("\n", unexplained));
        var stale = OnCpuByDesign.Where((_, index) => !used.Contains(index)).Select(e => $"{e.File}: {e.Line}").ToList();
        Assert.True(stale.Count == 0, "OnCpuByDesign lists lines that no longer exist:\n" + string.Join("\n", stale));
    }

    [Fact]
    public void The_scan_finds_a_factory_call_without_a_device_and_ignores_comments_strings_and_like_copies()
    {
        Assert.Matches(Factory, Code("Tensor mask = torch.ones(batch, length);"));
        Assert.Matches(Factory, Code("var ids = tensor(values, shape);"));
        Assert.Matches(Factory, Code("using var p = Scalars.Arange(n, CPU);"));
        Assert.DoesNotMatch(Factory, Code("var z = torch.zeros_like(x); // torch.zeros(3)"));
        Assert.DoesNotMatch(Factory, Code("throw Error($\"hooks must be empty (hooks are code)\");"));
        Assert.DoesNotMatch(Factory, Code("/// <c>torch.arange(n)</c>"));
        Assert.DoesNotMatch(Factory, Code("x.normal_(0, 0.02); encoder.tensor_count(3);"));
    }

    // The line without its comment and string literals.
    private static string Code(string line)
    {
        string trimmed = line.TrimStart();
        if (trimmed.StartsWith("//", StringComparison.Ordinal)) return "";
        string noStrings = StringLiteral.Replace(line, "\"\"");
        int comment = noStrings.IndexOf("//", StringComparison.Ordinal);
        return comment < 0 ? noStrings : noStrings[..comment];
    }

    [Fact]
    public void Evaluator_moves_a_model_to_the_device_it_is_asked_to_run_on()
    {
        using var model = TinyModels.Classifier("cls");
        TaskDataset data = TinyModels.ToyTask(4, seed: 1);
        // The meta device stands in for a GPU. It cannot compute the encoder, so the run fails; the model was moved first.
        Assert.ThrowsAny<Exception>(() => Evaluator.Run(model, data, batchSize: 4, META));
        Assert.All(model.parameters(), p => Assert.Equal(DeviceType.META, p.device_type));
    }

    [Fact]
    public void Device_option_accepts_cpu_and_names_itself_for_anything_else()
    {
        Assert.Equal(DeviceType.CPU, Devices.Parse(" CPU ").type);
        var error = Assert.Throws<SharpTuneException>(() => Devices.Parse("gpu"));
        Assert.Contains("--device must be cpu, cuda or cuda:N, got 'gpu'", error.Message);
        Assert.Throws<SharpTuneException>(() => Devices.Parse("cuda:x"));
        Assert.Throws<SharpTuneException>(() => new TrainingOptions { Device = "gpu" }.Validate());
    }

    [Fact]
    public void Device_cuda_without_a_usable_GPU_says_why_and_how_to_get_one()
    {
        TorchRuntime.EnsureLoaded();
        if (torch.cuda.is_available())
        {
            Assert.Equal(DeviceType.CUDA, Devices.Parse("cuda").type);
            var tooHigh = Assert.Throws<SharpTuneException>(() => Devices.Parse($"cuda:{torch.cuda.device_count()}"));
            Assert.Contains("CUDA device(s)", tooHigh.Message);
            return;
        }
        var error = Assert.Throws<SharpTuneException>(() => Devices.Parse("cuda"));
        Assert.Contains("--device cuda: CUDA is not available", error.Message);
        Assert.Contains(File.Exists(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libtorch_cuda.so"))
            ? "no NVIDIA GPU" : "-p:SharpTuneTorch=cuda", error.Message);
    }

    [CudaFact]
    public void Training_on_cuda_matches_training_on_the_cpu()
    {
        TaskDataset train = TinyModels.ToyTask(32, seed: 1);
        var options = new TrainingOptions { Epochs = 2, BatchSize = 8, LearningRates = new(1e-3), WarmupRatio = 0 };
        float[][] Probabilities(string device)
        {
            using var model = TinyModels.Classifier("cls", dropout: 0);
            new Trainer(model, Strategy.Parse("full"), options with { Device = device }).Fit(train, train);
            Assert.All(model.parameters(), p => Assert.Equal(device == "cpu" ? DeviceType.CPU : DeviceType.CUDA, p.device_type));
            return Evaluator.Run(model, train, 8, CPU).Probabilities; // moved back to the CPU to compare
        }
        float[][] cpu = Probabilities("cpu"), cuda = Probabilities("cuda");
        double worst = cpu.Zip(cuda).Max(pair => pair.First.Zip(pair.Second).Max(v => Math.Abs(v.First - v.Second)));
        Assert.True(worst < 1e-3, $"largest probability difference cpu vs cuda after training: {worst}");
    }

    [CudaFact]
    public void Bf16_lora_and_the_feature_cache_run_on_cuda()
    {
        TaskDataset train = TinyModels.ToyTask(32, seed: 1);
        foreach (string strategy in new[] { "lora:r=4", "frozen" })
        {
            using var model = TinyModels.Classifier("mean", dropout: 0.1);
            var options = new TrainingOptions { Epochs = 2, BatchSize = 8, LearningRates = new(3e-3), Precision = Precision.Bf16, Device = "cuda", DiskFeatureCache = false };
            TrainingResult result = new Trainer(model, Strategy.Parse(strategy), options).Fit(train, train);
            Assert.True(result.Audit.Passed, result.Audit.Summary);
            Assert.Equal(strategy == "frozen", result.UsedFeatureCache);
            Assert.All(model.parameters(), p => Assert.Equal(DeviceType.CUDA, p.device_type));
            Assert.True(double.IsFinite(Evaluator.Run(model, train, 8, CUDA, precision: Precision.Bf16).Loss));
        }
    }
}
