using System.ComponentModel;
using System.Globalization;
using SharpTune.Export;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

/// <summary>Options of <c>sharptune export-onnx</c>.</summary>
public sealed class ExportOnnxSettings : CommandSettings
{
    /// <summary>The run directory (or Hugging Face model directory) to export.</summary>
    [CommandOption("--model <DIR>")]
    [Description("A run directory or Python-saved task checkpoint (exported with its head, output logits), or a Hugging Face model directory (bare encoder, output last_hidden_state), local or org/name[[@revision]] on the Hugging Face hub. Required.")]
    public string? Model { get; init; }

    /// <summary>The .onnx file to write.</summary>
    [CommandOption("-o|--out <FILE>")]
    [Description("The .onnx file to write (replaced if it exists). Required.")]
    public string? Out { get; init; }

    /// <summary>float32, float16 or int8.</summary>
    [CommandOption("--weights <FORMAT>")]
    [Description("Weight format: float32 (default), float16 (half the file, float32 computation) or int8 (dynamic quantisation of the Linear layers).")]
    [DefaultValue("float32")]
    public string Weights { get; init; } = "float32";

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Model is null) return ValidationResult.Error("--model is required.");
        if (Out is null) return ValidationResult.Error("--out is required.");
        if (!Enum.TryParse<OnnxWeightFormat>(Weights, ignoreCase: true, out var format) || !Enum.IsDefined(format) || int.TryParse(Weights, out _))
            return ValidationResult.Error($"--weights '{Weights}' is not one of float32, float16, int8.");
        return ValidationResult.Success();
    }

    /// <summary>The parsed <see cref="Weights"/>.</summary>
    public OnnxWeightFormat WeightFormat => Enum.Parse<OnnxWeightFormat>(Weights, ignoreCase: true);
}

/// <summary><c>sharptune export-onnx</c>: writes a model as an ONNX file for ONNX Runtime.</summary>
internal sealed class ExportOnnxCommand(IAnsiConsole console) : Command<ExportOnnxSettings>
{
    public override int Execute(CommandContext context, ExportOnnxSettings settings, CancellationToken cancellationToken)
    {
        SharpTune.Native.TorchRuntime.EnsureLoaded();
        OnnxExportReport report = OnnxExporter.ExportDirectory(settings.Model!, settings.Out!, new OnnxExportOptions(settings.WeightFormat));
        console.WriteLine($"Exported {report.ModelType} to {report.Path} ({(report.Bytes / 1e6).ToString("0.0", CultureInfo.InvariantCulture)} MB, opset {OnnxExporter.Opset}, {settings.WeightFormat.ToString().ToLowerInvariant()} weights)");
        console.WriteLine($"inputs: {string.Join(", ", report.Inputs)} [batch, sequence] int64");
        console.WriteLine($"output: {report.Output} {report.OutputShape} float32");
        return 0;
    }
}
