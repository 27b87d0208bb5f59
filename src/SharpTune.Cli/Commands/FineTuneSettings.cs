using System.ComponentModel;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

/// <summary>Options shared by the commands that fine-tune (train, compare): model, data, head, task and budget.</summary>
internal abstract class FineTuneSettings : DataSettings
{
    [CommandOption("--model <DIR>")]
    [Description("Pretrained Hugging Face model directory (config.json, model.safetensors, vocab.txt), or org/name[[@revision]] on the Hugging Face hub (downloaded into its cache). Default: the packaged all-MiniLM-L6-v2.")]
    public string? Model { get; set; }

    [CommandOption("--train <FILE>", true)]
    [Description("Training data: .csv, .tsv or .jsonl with a header / keys naming the columns; or tagged sentences for --task token " +
        "(CoNLL: token<TAB>tag lines, a blank line between sentences; or JSON lines {\"tokens\": list, \"tags\": list}), detected from the file when --task is not given.")]
    public string Train { get; set; } = "";

    [CommandOption("--head <HEAD>")]
    [Description("Head: mean (mean of the token vectors, the default: how sentence-transformers models such as MiniLM were trained), " +
        "cls (RoBERTa's classification head on the first token), pooled (BERT's pooler, then a linear layer) or hf (the model's own Hugging Face " +
        "sequence-classification head: pooled on BERT, cls on RoBERTa/XLM-R, gelu cls on ELECTRA, pre_classifier on DistilBERT, ContextPooler on DeBERTa; its run loads in transformers as that class). " +
        "Token task: token (dropout → linear on every token, HF's XForTokenClassification head; the default) or hf.")]
    public string? Head { get; set; }

    [CommandOption("--task <TASK>")]
    [Description("single | multi | regression | token. Default: token for tagged sentences (.conll, CoNLL-style .tsv without a header, JSON lines with tokens), " +
        "else single-label (multi-label when the first JSON-lines label is a list).")]
    public string? Task { get; set; }

    [CommandOption("--epochs <N>")]
    [DefaultValue(3)]
    public int Epochs { get; set; } = 3;

    [CommandOption("--batch-size <N>")]
    [DefaultValue(32)]
    public int BatchSize { get; set; } = 32;

    [CommandOption("--max-length <N>")]
    [Description("Tokens per text (pair), longer ones are truncated; token task: tokens per window, longer sentences are split into windows. " +
        "Default: 128, or the model's max_position_embeddings when smaller.")]
    public int? MaxLength { get; set; }

    [CommandOption("--stride <N>")]
    [Description("Token task: tokens of context that consecutive windows of a long sentence share. Default: a quarter of --max-length.")]
    public int? Stride { get; set; }

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
