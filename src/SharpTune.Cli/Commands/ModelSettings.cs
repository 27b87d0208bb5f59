using System.ComponentModel;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

/// <summary>Options of commands that read a model directory.</summary>
public class ModelSettings : CommandSettings
{
    /// <summary>The Hugging Face model directory; the packaged all-MiniLM-L6-v2 when omitted.</summary>
    [CommandOption("-m|--model <DIR>")]
    [Description("Hugging Face model directory (config.json, model.safetensors, vocab.txt), or org/name[[@revision]] on the Hugging Face hub (downloaded into its cache). Default: the packaged all-MiniLM-L6-v2.")]
    public string? ModelDir { get; init; }
}
