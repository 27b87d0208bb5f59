using System.ComponentModel;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

/// <summary>Options shared by the commands that fine-tune (train, compare): model, data, head, task and budget.</summary>
internal abstract class FineTuneSettings : DataSettings
{
    [CommandOption("--model <DIR>")]
    [Description("Pretrained Hugging Face model directory (config.json, model.safetensors, vocab.txt). Default: the packaged all-MiniLM-L6-v2.")]
    public string? Model { get; set; }

    [CommandOption("--train <FILE>", true)]
    [Description("Training data: .csv, .tsv or .jsonl with a header / keys naming the columns.")]
    public string Train { get; set; } = "";

    [CommandOption("--head <HEAD>")]
    [Description("Head: mean (mean of the token vectors, the default: how sentence-transformers models such as MiniLM were trained), " +
        "cls (RoBERTa's classification head on the first token), pooled (BERT's pooler, then a linear layer) or hf (the model's own Hugging Face " +
        "sequence-classification head: pooled on BERT, cls on RoBERTa/XLM-R, gelu cls on ELECTRA, pre_classifier on DistilBERT, ContextPooler on DeBERTa; its run loads in transformers as that class).")]
    [DefaultValue("mean")]
    public string Head { get; set; } = "mean";

    [CommandOption("--task <TASK>")]
    [Description("single | multi | regression. Default: single-label (multi-label when the first JSON-lines label is a list).")]
    public string? Task { get; set; }

    [CommandOption("--epochs <N>")]
    [DefaultValue(3)]
    public int Epochs { get; set; } = 3;

    [CommandOption("--batch-size <N>")]
    [DefaultValue(32)]
    public int BatchSize { get; set; } = 32;

    [CommandOption("--max-length <N>")]
    [Description("Tokens per text (pair), longer ones are truncated. Default: 128, or the model's max_position_embeddings when smaller.")]
    public int? MaxLength { get; set; }

    [CommandOption("--seed <N>")]
    [DefaultValue(42)]
    public int Seed { get; set; } = 42;

    [CommandOption("--device <DEVICE>")]
    [Description("cpu, cuda or cuda:N.")]
    [DefaultValue("cpu")]
    public string Device { get; set; } = "cpu";

    [CommandOption("--precision <PRECISION>")]
    [Description("fp32 | bf16 (mixed precision: matrix multiplications in bfloat16, weights fp32).")]
    [DefaultValue("fp32")]
    public string Precision { get; set; } = "fp32";
}
