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

    /// <summary>
    /// The export of the run in <paramref name="runDirectory"/> (loaded as <paramref name="model"/>), made once and kept
    /// in <c>RUN/onnx/model.onnx</c> with the SHA-256 of the files it was made from (config.json, sharptune.json, the
    /// safetensors weights) in <c>model.source.json</c>; a later call reuses it while those files are unchanged and
    /// exports again otherwise. With <paramref name="adapterDirectory"/> (<paramref name="model"/> is the base model of
    /// <paramref name="runDirectory"/> with that PEFT adapter on it), the adapter is merged into the export, which is kept
    /// in <c>ADAPTER/onnx/model.onnx</c> and stamped with the base's files and the adapter's (adapter_config.json, its weights).
    /// </summary>
    public static string CachedExport(TaskModel model, string runDirectory, string? adapterDirectory = null) => adapterDirectory is null
        ? CachedExport(runDirectory, "model.onnx", path => model.ExportOnnx(path), [runDirectory])
        : CachedExport(adapterDirectory, "model.onnx", path => model.ExportOnnx(path), [runDirectory, adapterDirectory]);

    /// <summary>As <see cref="CachedExport(TaskModel, string, string)"/> for the bare encoder of a model directory: <c>onnx/encoder.onnx</c>.</summary>
    public static string CachedExport(Models.Encoder encoder, string modelDirectory) =>
        CachedExport(modelDirectory, "encoder.onnx", path => OnnxExporter.Export(encoder, path), [modelDirectory]);

    private static string CachedExport(string directory, string fileName, Action<string> export, string[] sources)
    {
        string folder = System.IO.Path.Combine(directory, CacheFolder);
        string path = System.IO.Path.Combine(folder, fileName), stampPath = System.IO.Path.ChangeExtension(path, ".source.json");
        string stamp = SourceStamp(sources);
        if (File.Exists(path) && StampOf(stampPath) == stamp) return path;
        Directory.CreateDirectory(folder);
        File.Delete(stampPath); // a stamp never describes an older file
        export(path);
        AtomicFile.WriteText(stampPath, new JsonObject { ["sha256"] = stamp, ["opset"] = OnnxExporter.Opset }.ToJsonString());
        return path;
    }

    // The hash a stamp file records; null when it is missing or unreadable (a crash while writing it): export again.
    private static string? StampOf(string stampPath)
    {
        try
        {
            return File.Exists(stampPath) ? JsonNode.Parse(File.ReadAllText(stampPath))?["sha256"]?.GetValue<string>() : null;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    // The files an export is made from (each directory's, hashed in name order); the exporter's opset is part of it.
    private static string SourceStamp(string[] directories)
    {
        var files = directories.SelectMany(directory => Directory.GetFiles(directory)
            .Where(f => System.IO.Path.GetFileName(f) is "config.json" or ClassifierCheckpoint.SettingsFile or Lora.PeftAdapter.ConfigFile
                || f.EndsWith(".safetensors", StringComparison.Ordinal))
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
