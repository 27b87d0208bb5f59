using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Models;
using TorchSharp;

namespace SharpTune.Export;

/// <summary>Options of an ONNX export.</summary>
/// <param name="Weights">How weights are stored (default float32; float16 halves the file; int8 quantises the Linear layers).</param>
public sealed record OnnxExportOptions(OnnxWeightFormat Weights = OnnxWeightFormat.Float32)
{
    /// <summary>Throws a <see cref="SharpTuneException"/> naming a bad option.</summary>
    public OnnxExportOptions Validate() => Enum.IsDefined(Weights) ? this
        : throw new SharpTuneException($"ONNX export: weights '{Weights}' is not one of {string.Join(", ", Enum.GetNames<OnnxWeightFormat>())}.");
}

/// <summary>What <see cref="OnnxExporter"/> wrote.</summary>
/// <param name="Path">The .onnx file.</param>
/// <param name="ModelType">config.json's model_type of the encoder.</param>
/// <param name="Inputs">The graph inputs, in order (input_ids, attention_mask[, token_type_ids]).</param>
/// <param name="Output">The graph output: logits, or last_hidden_state for a bare encoder.</param>
/// <param name="OutputShape">Its dimensions, e.g. [batch, 2] or [batch, sequence, 9].</param>
/// <param name="Bytes">The file size.</param>
public sealed record OnnxExportReport(string Path, string ModelType, IReadOnlyList<string> Inputs, string Output, string OutputShape, long Bytes);

/// <summary>
/// Exports a SharpTune model to ONNX (opset 17) for ONNX Runtime: an encoder with its head (output <c>logits</c>,
/// [batch, outputs] or [batch, sequence, outputs] for token classification) or a bare encoder (output
/// <c>last_hidden_state</c>); inputs named as Hugging Face's exports name them (<c>input_ids</c>,
/// <c>attention_mask</c>, <c>token_type_ids</c> where the architecture uses token types), batch and sequence axes
/// dynamic, LoRA adapters merged, dropout left out (inference). Each architecture and head writes its own graph
/// (<see cref="Encoder.ExportOnnx"/>, <see cref="Heads.Head.ExportOnnx"/>) through <see cref="OnnxGraphBuilder"/>;
/// the file is written by <see cref="OnnxModelWriter"/>, beside the ONNX reader the importer uses.
/// </summary>
public static class OnnxExporter
{
    /// <summary>The ONNX opset the graph is written for.</summary>
    public const int Opset = 17;

    /// <summary>Exports an encoder with its head; the model is not changed (adapters are merged into the copy written).</summary>
    public static OnnxExportReport Export(SequenceClassifier model, string path, OnnxExportOptions? options = null)
    {
        var g = new OnnxGraphBuilder((options ?? new()).Validate().Weights);
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        {
            string logits = model.ExportOnnx(g);
            OnnxDim[] dims = model.Head.PerToken
                ? [OnnxGraphBuilder.BatchAxis, OnnxGraphBuilder.SequenceAxis, model.Head.Outputs]
                : [OnnxGraphBuilder.BatchAxis, model.Head.Outputs];
            g.Output(logits, "logits", dims);
        }
        return Write(g, path, model.HuggingFaceClass ?? model.Encoder.Architecture.BaseClass, model.Encoder.Config.ModelType);
    }

    /// <summary>Exports a bare encoder: output <c>last_hidden_state</c> [batch, sequence, hidden].</summary>
    public static OnnxExportReport Export(Encoder encoder, string path, OnnxExportOptions? options = null)
    {
        var g = new OnnxGraphBuilder((options ?? new()).Validate().Weights);
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        {
            OnnxEncoderOutput output = encoder.ExportOnnx(g, "", pooled: false);
            g.Output(output.LastHiddenState, "last_hidden_state", [OnnxGraphBuilder.BatchAxis, OnnxGraphBuilder.SequenceAxis, encoder.Config.HiddenSize]);
        }
        return Write(g, path, encoder.Architecture.BaseClass, encoder.Config.ModelType);
    }

    /// <summary>
    /// Exports the model in <paramref name="directory"/>: a SharpTune run directory or a Python-saved task checkpoint
    /// (sharptune.json, or config.json's architectures naming a sequence- or token-classification class) with its head,
    /// any other Hugging Face model directory as a bare encoder.
    /// </summary>
    public static OnnxExportReport ExportDirectory(string directory, string path, OnnxExportOptions? options = null)
    {
        if (!Directory.Exists(directory)) throw new SharpTuneException($"{directory}: model directory not found.");
        if (IsTaskDirectory(directory))
        {
            using var task = TaskModel.Load(directory);
            return Export(task.Model, path, options);
        }
        using var encoder = PretrainedEncoder.Load(directory);
        return Export(encoder.Model, path, options);
    }

    private static bool IsTaskDirectory(string directory)
    {
        if (File.Exists(System.IO.Path.Combine(directory, ClassifierCheckpoint.SettingsFile))) return true;
        string configPath = System.IO.Path.Combine(directory, "config.json");
        EncoderConfig config = Architectures.LoadConfig(configPath);
        Architecture architecture = Architectures.Of(config);
        string? className = (StrictJson.ReadObject(configPath)["architectures"] as JsonArray)?.FirstOrDefault()?.GetValue<string>();
        return className == architecture.SequenceClassificationClass || className == architecture.TokenClassificationClass;
    }

    // Written through AtomicFile, so that a failed export leaves no half-written model.
    private static OnnxExportReport Write(OnnxGraphBuilder g, string path, string graphName, string modelType)
    {
        path = System.IO.Path.GetFullPath(path);
        string? parent = System.IO.Path.GetDirectoryName(path);
        if (parent is not null && !Directory.Exists(parent)) throw new SharpTuneException($"{parent}: directory not found (the --out file's directory).");
        OnnxModelContents contents = g.Build(graphName);
        AtomicFile.WriteStream(path, file => OnnxModelWriter.Write(file, contents));
        var output = contents.Outputs[0];
        string shape = "[" + string.Join(", ", output.Dims.Select(d => d.Param ?? d.Value!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "]";
        return new OnnxExportReport(path, modelType, contents.Inputs.Select(i => i.Name).ToList(), output.Name, shape, new FileInfo(path).Length);
    }
}
