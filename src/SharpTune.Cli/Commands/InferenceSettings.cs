using System.ComponentModel;
using SharpTune.Export;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

/// <summary>The options of evaluate and predict: the model to run, and what runs it (see <see cref="RuntimeFlags"/>).</summary>
internal abstract class InferenceSettings : DataSettings
{
    [CommandOption("--model <RUN_DIR>", true)]
    [Description("A run directory written by train, or a Hugging Face XForSequenceClassification / XForTokenClassification directory (or org/name[[@revision]] on the Hugging Face hub).")]
    public string Model { get; set; } = "";

    [CommandOption("--adapter <DIR>")]
    [Description("A PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors, e.g. a lora run's adapter/) to put on --model, then its base model.")]
    public string? Adapter { get; set; }

    [CommandOption("--stride <N>")]
    [Description("Token-classification models: tokens of context shared by consecutive windows of a long sentence. Default: a quarter of the model's max length.")]
    public int? Stride { get; set; }

    [CommandOption("--format <FORMAT>")]
    [Description("table | json (one object).")]
    [DefaultValue("table")]
    public string Format { get; set; } = "table";

    [CommandOption("--batch-size <N>")]
    [DefaultValue(32)]
    public int BatchSize { get; set; } = 32;

    [CommandOption("--precision <PRECISION>")]
    [Description(RuntimeFlags.PrecisionHelp)]
    [DefaultValue("fp32")]
    public string Precision { get; set; } = "fp32";

    [CommandOption("--onnx <FILE>")]
    [Description("With --runtime onnx or auto: run this export of --model (e.g. export-onnx --weights int8) instead of the cached float32 one.")]
    public string? Onnx { get; set; }

    [CommandOption("--device <DEVICE>")]
    [Description(RuntimeFlags.DeviceHelp)]
    [DefaultValue("cpu")]
    public string Device { get; set; } = "cpu";

    [CommandOption("--runtime <RUNTIME>")]
    [Description(RuntimeFlags.RuntimeHelp)]
    [DefaultValue("auto")]
    public string Runtime { get; set; } = "auto";

    /// <summary>The runtime request of these flags (the job's size is added once its data is read).</summary>
    public RuntimeRequest RuntimeRequest() => RuntimeFlags.Request(Runtime, Onnx, Precision, Device, tokens: null);
}

/// <summary>The --runtime, --precision and --device flags of evaluate, predict and embed: their help and their meaning.</summary>
internal static class RuntimeFlags
{
    public const string RuntimeHelp = "auto (default: ONNX Runtime on the model's float32 export where it computes what TorchSharp computes, else TorchSharp; says which and why) | " +
        "torch (TorchSharp) | onnx (ONNX Runtime on the export, made once and kept in RUN/onnx/, or under SHARPTUNE_HOME for a directory SharpTune did not write; fp32 only).";
    public const string PrecisionHelp = "fp32 | bf16 (mixed precision: matrix multiplications in bfloat16, weights fp32; runs in TorchSharp).";
    public const string DeviceHelp = "cpu, cuda or cuda:N (a GPU runs in TorchSharp and needs the CUDA build: README, GPUs).";

    /// <summary>The library's request for these flags; a bad value or combination is an error naming the flags.</summary>
    public static RuntimeRequest Request(string runtime, string? onnx, string precision, string device, long? tokens)
    {
        var parsed = runtime.Trim().ToLowerInvariant() switch
        {
            "auto" => InferenceRuntime.Auto,
            "torch" => InferenceRuntime.Torch,
            "onnx" => InferenceRuntime.Onnx,
            _ => throw new SharpTuneException($"--runtime '{runtime}' is not one of auto, torch, onnx."),
        };
        var request = new RuntimeRequest { Runtime = parsed, OnnxFile = onnx, Precision = Models.Precisions.Parse(precision), Device = device, Tokens = tokens };
        if (onnx is not null && parsed == InferenceRuntime.Torch)
            throw new SharpTuneException("--onnx FILE runs that file in ONNX Runtime; it goes with --runtime onnx or auto.");
        if (parsed == InferenceRuntime.Onnx && request.Precision != Models.Precision.Fp32)
            throw new SharpTuneException($"--precision {precision} does not apply to --runtime onnx, which runs the float32 export; use --precision fp32.");
        if (onnx is not null && Directory.Exists(onnx)) throw new SharpTuneException($"{onnx}: --onnx is a directory; give an .onnx file (export-onnx --out).");
        if (onnx is not null && !File.Exists(onnx)) throw new SharpTuneException($"{onnx}: --onnx file not found.");
        if (parsed != InferenceRuntime.Onnx) Native.Devices.Parse(device);
        else if (device.Trim().ToLowerInvariant() != "cpu") throw new SharpTuneException($"--device {device} does not apply to --runtime onnx, which runs on the CPU; use --runtime torch for a GPU.");
        return request.Validate();
    }
}
