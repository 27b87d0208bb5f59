using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>;
using SharpTune.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Export;

/// <summary>
/// An exported model (see <see cref="OnnxExporter"/>) in an ONNX Runtime session, run in place of the TorchSharp forward
/// by <see cref="TaskModel.UseOnnxRuntime"/> (logits) or <see cref="Inference.Embedder.OnnxRuntime"/> (last_hidden_state):
/// same inputs, same output (within 1e-4), so that loss, probabilities, metrics and pooling are computed by the same code
/// as with TorchSharp. Sessions use <see cref="Native.TorchRuntime.Threads"/> threads.
/// </summary>
public sealed class OnnxRuntimeModel : IDisposable
{
    /// <summary>The cache folder inside a run directory.</summary>
    public const string CacheFolder = "onnx";

    private readonly InferenceSession session;
    private readonly string[] inputs;

    /// <summary>Opens <paramref name="path"/> (an export with a <c>logits</c> or <c>last_hidden_state</c> output) in a session.</summary>
    public OnnxRuntimeModel(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: ONNX model not found.");
        var options = new SessionOptions { IntraOpNumThreads = Native.TorchRuntime.Threads };
        try
        {
            session = new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new SharpTuneException($"{path}: ONNX Runtime cannot load it: {e.Message}", e);
        }
        Output = session.OutputMetadata.Keys.FirstOrDefault(k => k is "logits" or "last_hidden_state") ?? "";
        if (Output.Length == 0)
        {
            session.Dispose();
            throw new SharpTuneException($"{path}: the model has no 'logits' or 'last_hidden_state' output (outputs: {string.Join(", ", session.OutputMetadata.Keys)}).");
        }
        inputs = [.. session.InputMetadata.Keys];
        Path = path;
    }

    /// <summary>The .onnx file.</summary>
    public string Path { get; }

    /// <summary>The output it computes: <c>logits</c> (a model with its head) or <c>last_hidden_state</c> (a bare encoder).</summary>
    public string Output { get; }

    /// <summary>
    /// <see cref="Output"/> for a batch, as <see cref="Models.SequenceClassifier.forward"/> (logits) or the encoder
    /// (last_hidden_state) computes it: int64 [batch, sequence] inputs, a CPU float32 result.
    /// </summary>
    public Tensor Run(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask)
    {
        int[] shape = [(int)inputIds.shape[0], (int)inputIds.shape[1]];
        var feeds = new List<NamedOnnxValue>(inputs.Length);
        foreach (string name in inputs)
        {
            Tensor source = name switch
            {
                "input_ids" => inputIds,
                "attention_mask" => attentionMask,
                "token_type_ids" => tokenTypeIds,
                _ => throw new SharpTuneException($"{Path}: unexpected model input '{name}' (expected input_ids, attention_mask, token_type_ids)."),
            };
            using var values = source.to(int64).cpu().contiguous();
            feeds.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor(values.data<long>().ToArray(), shape)));
        }
        using var results = session.Run(feeds);
        var output = results.Single(r => r.Name == Output).AsTensor<float>();
        return torch.tensor(output.ToArray(), [.. output.Dimensions.ToArray().Select(d => (long)d)]);
    }

    /// <summary>
    /// Checks that this session computes <paramref name="model"/>'s logits: a <c>logits</c> output with one value per
    /// output of its head (an export of another model, or of a bare encoder, is refused naming the file).
    /// </summary>
    public OnnxRuntimeModel CheckComputes(TaskModel model)
    {
        int outputs = model.Model.Head.Outputs;
        if (Output != "logits")
            throw new SharpTuneException($"{Path}: the model computes '{Output}', not 'logits': it is the export of a bare encoder, not of a run with its head.");
        int[] dims = session.OutputMetadata["logits"].Dimensions;
        if (dims.Length > 0 && dims[^1] > 0 && dims[^1] != outputs)
            throw new SharpTuneException($"{Path}: its logits have {dims[^1]} values per {(dims.Length == 3 ? "token" : "example")} but the model has {outputs} outputs; export this model (export-onnx --model ...).");
        return this;
    }

    /// <summary>How far an export's output may be from TorchSharp's (largest absolute difference) for Auto to run it.</summary>
    public const double Agreement = 1e-4;

    /// <summary>
    /// Checks that this session is the export of a bare encoder (a <c>last_hidden_state</c> output), as an
    /// <see cref="Inference.Embedder"/> needs; the export of a model with its head is refused naming the file.
    /// </summary>
    public OnnxRuntimeModel CheckComputesHiddenStates() => Output == "last_hidden_state" ? this
        : throw new SharpTuneException($"{Path}: the model computes '{Output}', not 'last_hidden_state': it is the export of a model with its head, not of a bare encoder.");

    /// <summary>
    /// The export of the run in <paramref name="runDirectory"/> (loaded as <paramref name="model"/>), made once and
    /// reused while the files it was made from (config.json, sharptune.json, the safetensors weights; their SHA-256 is
    /// recorded in <c>model.source.json</c>) are unchanged, exported again otherwise. When it is made, its logits are
    /// compared with TorchSharp's on a check batch and the largest difference is recorded with it
    /// (<see cref="CachedOnnxExport.MaxDifference"/>). With <paramref name="adapterDirectory"/> (<paramref name="model"/>
    /// is the base model of <paramref name="runDirectory"/> with that PEFT adapter on it), the adapter is merged into the
    /// export and the adapter's files are part of the stamp.
    /// Where it is kept: in the directory of the run (or adapter) when SharpTune wrote it (it holds sharptune.json)
    /// and it can be written, as <c>onnx/model.onnx</c>; else (a Hugging Face checkpoint, a hub snapshot, a read-only
    /// directory) in <c>CACHE/onnx/&lt;stamp&gt;/</c> under <paramref name="cacheRoot"/> (default
    /// <see cref="PackagedModels.DefaultCacheRoot"/>): SharpTune never writes into a directory it did not make.
    /// </summary>
    public static CachedOnnxExport CachedExport(TaskModel model, string runDirectory, string? adapterDirectory = null, string? cacheRoot = null) =>
        CachedExport(adapterDirectory ?? runDirectory, "model.onnx", path => model.ExportOnnx(path),
            adapterDirectory is null ? [runDirectory] : [runDirectory, adapterDirectory], cacheRoot,
            session => MaxDifference(session, model.Model, model.Model.Encoder.Config, (ids, types, mask) => model.Model.call(ids, types, mask)));

    /// <summary>As <see cref="CachedExport(TaskModel, string, string, string)"/> for the bare encoder of a model directory: <c>encoder.onnx</c>, output last_hidden_state.</summary>
    public static CachedOnnxExport CachedExport(Models.Encoder encoder, string modelDirectory, string? cacheRoot = null) =>
        CachedExport(modelDirectory, "encoder.onnx", path => OnnxExporter.Export(encoder, path), [modelDirectory], cacheRoot,
            session => MaxDifference(session, encoder, encoder.Config, (ids, types, mask) => encoder.call(ids, types, mask).LastHiddenState));

    private static CachedOnnxExport CachedExport(string directory, string fileName, Action<string> export, string[] sources, string? cacheRoot,
        Func<OnnxRuntimeModel, double> check)
    {
        string stamp = SourceStamp(sources);
        bool ours = File.Exists(System.IO.Path.Combine(directory, ClassifierCheckpoint.SettingsFile)) && !Hub.HubModelId.TryFromSnapshot(directory, out _);
        string shared = System.IO.Path.Combine(System.IO.Path.GetFullPath(cacheRoot ?? PackagedModels.DefaultCacheRoot), CacheFolder, stamp[..32]);
        if (ours)
        {
            try
            {
                return CachedExport(System.IO.Path.Combine(directory, CacheFolder), fileName, export, stamp, check);
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException && !File.Exists(System.IO.Path.Combine(directory, CacheFolder, fileName)))
            {
                // A run in a read-only place: the shared cache below.
            }
        }
        return CachedExport(shared, fileName, export, stamp, check);
    }

    // One cached export is made at a time in this process (AtomicFile's temporary file is per process, and two threads
    // may ask for the same export); other processes write their own temporary files and the last rename wins.
    private static readonly Lock ExportGate = new();

    private static CachedOnnxExport CachedExport(string folder, string fileName, Action<string> export, string stamp, Func<OnnxRuntimeModel, double> check)
    {
        using var gate = ExportGate.EnterScope();
        string path = System.IO.Path.Combine(folder, fileName), stampPath = System.IO.Path.ChangeExtension(path, ".source.json");
        if (File.Exists(path) && ReadStamp(stampPath) is { Sha256: var recorded, MaxDifference: var difference } && recorded == stamp)
            return new CachedOnnxExport(path, difference);
        Directory.CreateDirectory(folder);
        File.Delete(stampPath); // a stamp never describes an older file
        export(path);
        double measured;
        using (var session = new OnnxRuntimeModel(path)) measured = check(session);
        AtomicFile.WriteText(stampPath, new JsonObject
        {
            ["sha256"] = stamp, ["opset"] = OnnxExporter.Opset, ["max_abs_difference"] = double.IsFinite(measured) ? measured : null,
            ["checked_on"] = CheckBatchDescription,
        }.ToJsonString());
        return new CachedOnnxExport(path, measured);
    }

    // The hash and the recorded difference of a stamp file; null when it is missing, unreadable (a crash while writing
    // it) or from before differences were recorded: export again.
    private static (string Sha256, double MaxDifference)? ReadStamp(string stampPath)
    {
        try
        {
            if (!File.Exists(stampPath)) return null;
            if (JsonNode.Parse(File.ReadAllText(stampPath)) is not JsonObject json || json["sha256"]?.GetValue<string>() is not { } sha
                || !json.TryGetPropertyValue("max_abs_difference", out JsonNode? difference)) return null;
            return (sha, difference?.GetValue<double>() ?? double.NaN);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    private const string CheckBatchDescription = "2 sequences of random token ids: 16 tokens, and 9 tokens with 7 of padding";

    // The largest absolute difference between the session's output and TorchSharp's (module in eval mode, float32) on a
    // batch of two random sequences, the second padded: for a token-level output, over real tokens only.
    private static double MaxDifference(OnnxRuntimeModel session, nn.Module module, Models.EncoderConfig config, Func<Tensor, Tensor, Tensor, Tensor> forward)
    {
        int length = Math.Min(16, config.MaxInputLength);
        int padded = Math.Min(7, length - 2);
        using var scope = torch.NewDisposeScope();
        using var generator = new torch.Generator(20261202);
        int low = Math.Min(5, config.VocabSize - 1);
        // On the CPU: ONNX Runtime reads them there, and the modules checked were loaded there.
        Tensor ids = torch.randint(low, config.VocabSize, [2, length], generator: generator, dtype: int64, device: CPU);
        Tensor mask = torch.ones([2, length], int64, device: CPU);
        mask[1, TensorIndex.Slice(length - padded)].fill_(Native.Scalars.Zero);
        using (var pad = ((long)config.PadTokenId).ToScalar()) ids[1, TensorIndex.Slice(length - padded)].fill_(pad);
        Tensor types = torch.zeros([2, length], int64, device: CPU);
        bool wasTraining = module.training;
        module.eval();
        Tensor expected;
        try
        {
            using var noGrad = torch.no_grad();
            expected = forward(ids, types, mask).to(float32).cpu();
        }
        finally
        {
            module.train(wasTraining);
        }
        Tensor difference = (session.Run(ids, types, mask) - expected).abs();
        if (difference.dim() == 3) difference = difference * mask.unsqueeze(-1).to(float32);
        return difference.max().item<float>();
    }

    // The files an export is made from (each directory's, hashed in name order); the exporter's opset is part of it.
    private static string SourceStamp(string[] directories)
    {
        var files = directories.SelectMany(directory => Directory.GetFiles(directory)
            .Where(f => System.IO.Path.GetFileName(f) is "config.json" or ClassifierCheckpoint.SettingsFile or Lora.PeftAdapter.ConfigFile
                || f.EndsWith(".safetensors", StringComparison.Ordinal) || f.EndsWith(".bin", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal));
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(BitConverter.GetBytes(OnnxExporter.Opset));
        foreach (string file in files)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(System.IO.Path.GetFileName(file)));
            using var stream = File.OpenRead(file);
            byte[] buffer = new byte[1 << 20];
            int read;
            while ((read = stream.Read(buffer)) > 0) sha.AppendData(buffer, 0, read);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <inheritdoc />
    public void Dispose() => session.Dispose();
}

/// <summary>
/// A cached export (<see cref="OnnxRuntimeModel.CachedExport(TaskModel, string, string, string)"/>): its file, and the
/// largest absolute difference between its output and TorchSharp's measured on a check batch when it was made
/// (NaN if the export computed a non-finite value there).
/// </summary>
public sealed record CachedOnnxExport(string Path, double MaxDifference);
