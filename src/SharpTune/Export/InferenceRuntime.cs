using SharpTune.Models;

namespace SharpTune.Export;

/// <summary>What computes the forward pass of evaluation, prediction and embedding.</summary>
public enum InferenceRuntime
{
    /// <summary>The faster of the two where they compute the same (see <see cref="RuntimeSelector"/>); the CLI's default.</summary>
    Auto,
    /// <summary>TorchSharp (libtorch), on the device asked for, in fp32 or bf16.</summary>
    Torch,
    /// <summary>ONNX Runtime on the model's float32 export (CPU).</summary>
    Onnx,
}

/// <summary>What an inference job asks of <see cref="RuntimeSelector"/>.</summary>
public sealed record RuntimeRequest
{
    /// <summary>The runtime asked for; default <see cref="InferenceRuntime.Auto"/>.</summary>
    public InferenceRuntime Runtime { get; init; } = InferenceRuntime.Auto;

    /// <summary>An export to run instead of the cached float32 one (e.g. an int8 export); with Onnx or Auto only.</summary>
    public string? OnnxFile { get; init; }

    /// <summary>The precision asked for: anything but fp32 runs in TorchSharp.</summary>
    public Precision Precision { get; init; } = Precision.Fp32;

    /// <summary>The device asked for (cpu, cuda, cuda:N): anything but the CPU runs in TorchSharp.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// How many tokens the job runs through the model, when known (an estimate will do: <see cref="EstimateTokens"/>):
    /// Auto runs fewer than <see cref="RuntimeSelector.OnnxMinimumTokens"/> in TorchSharp.
    /// </summary>
    public long? Tokens { get; init; }

    /// <summary>
    /// An estimate of the tokens of <paramref name="texts"/> truncated at <paramref name="maxLength"/>, without
    /// tokenizing them: one per 4 characters plus 2 special tokens, at most <paramref name="maxLength"/> per text.
    /// </summary>
    public static long EstimateTokens(IEnumerable<string> texts, int maxLength) =>
        texts.Sum(text => Math.Min(maxLength, (text.Length + 3L) / 4 + 2));

    /// <summary>Where exports of directories that are not SharpTune runs are kept; default <see cref="Checkpoints.PackagedModels.DefaultCacheRoot"/>.</summary>
    public string? CacheRoot { get; init; }

    /// <summary>Throws naming the property when the combination cannot run.</summary>
    public RuntimeRequest Validate()
    {
        if (OnnxFile is not null && Runtime == InferenceRuntime.Torch)
            throw new SharpTuneException($"OnnxFile ({OnnxFile}) runs that file in ONNX Runtime; it goes with Runtime Onnx or Auto, not Torch.");
        if (Runtime == InferenceRuntime.Onnx && Precision != Precision.Fp32)
            throw new SharpTuneException($"Precision {Precision.ToString().ToLowerInvariant()} does not apply to Runtime Onnx, which runs the float32 export; use Precision Fp32.");
        return this;
    }
}

/// <summary>
/// What <see cref="RuntimeSelector"/> chose. <paramref name="Session"/>: the ONNX Runtime session when it chose ONNX
/// Runtime (owned by the caller, or by the <see cref="TaskModel"/> it was given to), else null.
/// <paramref name="Reason"/>: why, in a few words (the export used, and how far it was found from TorchSharp).
/// </summary>
public sealed record RuntimeChoice(InferenceRuntime Runtime, string Reason, OnnxRuntimeModel? Session)
{
    /// <summary>"onnx (…)" or "torch (…)", as the CLI prints it.</summary>
    public override string ToString() => $"{(Runtime == InferenceRuntime.Onnx ? "onnx" : "torch")} ({Reason})";
}

/// <summary>
/// Chooses the runtime of an inference job. Torch and Onnx are taken as asked. Auto takes ONNX Runtime (about twice as
/// fast as libtorch in float32 on a CPU: bench/RESULTS.md) where it computes what TorchSharp computes: float32, on the
/// CPU, at least <see cref="OnnxMinimumTokens"/> tokens, a head with an ONNX graph, and an export whose output was found within
/// <see cref="OnnxRuntimeModel.Agreement"/> of TorchSharp's when it was made (<see cref="OnnxRuntimeModel.CachedExport(TaskModel, string, string, string)"/>
/// checks it once and records it); otherwise TorchSharp, and the choice says why.
/// </summary>
public static class RuntimeSelector
{
    /// <summary>
    /// The fewest tokens Auto runs in ONNX Runtime: opening a session (0.7 s for MiniLM) costs more than it saves on a
    /// small job. Measured here with `predict` on a MiniLM run (README, Which runtime runs inference), the two
    /// runtimes were even at about 8 e-mails of 128 tokens (1,024) and at about 64 texts of 20 tokens (1,300).
    /// </summary>
    public const long OnnxMinimumTokens = 1024;

    /// <summary>The runtime of <paramref name="model"/>, loaded from <paramref name="modelDirectory"/> (with the PEFT adapter of <paramref name="adapterDirectory"/>), set on it with <see cref="TaskModel.UseOnnxRuntime"/>.</summary>
    public static RuntimeChoice Apply(TaskModel model, string modelDirectory, string? adapterDirectory, RuntimeRequest request)
    {
        RuntimeChoice choice = Choose(request.Validate(), model.Model.Head.HasOnnxExport ? null : $"head {model.Model.Head.GetType().Name} has no ONNX graph",
            () => OnnxRuntimeModel.CachedExport(model, modelDirectory, adapterDirectory, request.CacheRoot), check: session => session.CheckComputes(model));
        model.UseOnnxRuntime(choice.Session);
        return choice;
    }

    /// <summary>The runtime of an embedder over <paramref name="encoder"/>; the caller sets <see cref="Inference.Embedder.OnnxRuntime"/> to its session and disposes it.</summary>
    public static RuntimeChoice ForEncoder(PretrainedEncoder encoder, RuntimeRequest request) =>
        Choose(request.Validate(), null, () => OnnxRuntimeModel.CachedExport(encoder.Model, encoder.Directory.Path, request.CacheRoot),
            check: session => session.CheckComputesHiddenStates());

    private static RuntimeChoice Choose(RuntimeRequest request, string? noGraph, Func<CachedOnnxExport> export, Func<OnnxRuntimeModel, OnnxRuntimeModel> check)
    {
        if (request.Runtime == InferenceRuntime.Torch) return new(InferenceRuntime.Torch, "asked for", null);
        bool auto = request.Runtime == InferenceRuntime.Auto;
        if (auto && request.OnnxFile is null)
        {
            string? torchBecause = request.Precision != Precision.Fp32 ? $"precision {request.Precision.ToString().ToLowerInvariant()} runs in TorchSharp"
                : Native.Devices.Parse(request.Device).type != TorchSharp.DeviceType.CPU ? $"device {request.Device} runs in TorchSharp"
                : noGraph is not null ? noGraph
                : request.Tokens is long tokens && tokens < OnnxMinimumTokens
                    ? $"about {tokens} tokens: below {OnnxMinimumTokens}, opening an ONNX Runtime session costs more time than it saves"
                : null;
            if (torchBecause is not null) return new(InferenceRuntime.Torch, "auto: " + torchBecause, null);
        }
        string path;
        string reason;
        if (request.OnnxFile is not null)
        {
            if (Directory.Exists(request.OnnxFile)) throw new SharpTuneException($"{request.OnnxFile}: OnnxFile is a directory; give an .onnx file.");
            if (!File.Exists(request.OnnxFile)) throw new SharpTuneException($"{request.OnnxFile}: OnnxFile not found.");
            (path, reason) = (request.OnnxFile, $"{(auto ? "auto: " : "")}ONNX Runtime on {request.OnnxFile}");
        }
        else
        {
            CachedOnnxExport cached = export();
            string measured = $"within {cached.MaxDifference:0.0e+0} of TorchSharp on its check batch";
            if (auto && !(cached.MaxDifference <= OnnxRuntimeModel.Agreement))
                return new(InferenceRuntime.Torch, $"auto: the export {cached.Path} differs from TorchSharp by {cached.MaxDifference:0.0e+0} (more than {OnnxRuntimeModel.Agreement:0e+0}) on its check batch", null);
            (path, reason) = (cached.Path, $"{(auto ? "auto: " : "")}ONNX Runtime on {cached.Path}, {measured}");
        }
        var session = new OnnxRuntimeModel(path);
        try
        {
            return new(InferenceRuntime.Onnx, reason, check(session));
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }
}
