// The ELECTRA discriminator: BERT's embeddings (at their own width, embedding_size), a Linear up to the hidden size
// when the two differ, then BERT's layers (Bert.cs); no pooler. Field names are the HF ElectraModel keys:
// embeddings.word_embeddings.weight, embeddings_project.weight, encoder.layer.0.attention.self.query.weight, …
#pragma warning disable IDE1006 // field names are checkpoint key segments (embeddings_project), not C# style
using System.Text.Json.Serialization;
using SharpTune.Export;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Models;

/// <summary>
/// ELECTRA's config: BERT's keys plus <c>embedding_size</c>, with the defaults of <c>transformers.ElectraConfig</c>
/// (those of <c>electra-small-discriminator</c>: hidden 256, 4 heads, intermediate 1024, embedding 128).
/// </summary>
public sealed record ElectraConfig : BertConfig
{
    /// <summary>Creates a config with HF ElectraConfig's defaults.</summary>
    public ElectraConfig()
    {
        ModelType = "electra";
        HiddenSize = 256;
        NumAttentionHeads = 4;
        IntermediateSize = 1024;
    }

    /// <summary>Width of the embeddings; projected to <see cref="BertConfig.HiddenSize"/> when it differs.</summary>
    [JsonPropertyName("embedding_size")] public int EmbeddingSize { get; init; } = 128;

    /// <inheritdoc />
    public override EncoderConfig Validate(string source = "config.json")
    {
        Positive(source, "embedding_size", EmbeddingSize);
        return base.Validate(source);
    }
}

/// <summary>
/// The ELECTRA discriminator's encoder (HF <c>ElectraModel</c>): <see cref="BertEmbeddings"/> of width
/// <c>embedding_size</c> → <c>embeddings_project</c> (only when that differs from the hidden size) → BERT's layers.
/// It has no pooler; its sequence head reads the first token.
/// </summary>
public sealed class ElectraModel : Encoder
{
    /// <summary>ELECTRA in the registry: prefix <c>electra</c>, HF's class names, PEFT's LoRA targets, the gelu head.</summary>
    public static readonly Architecture Registration = new()
    {
        ModelType = "electra",
        Prefix = "electra",
        ConfigType = typeof(ElectraConfig),
        Create = (config, _) => new ElectraModel((ElectraConfig)config),
        Groups = new KeyGroups(["embeddings.", "embeddings_project."], "encoder.layer.", null),
        LoraTargets = ["query", "value"],
        LinearLayers = ["embeddings_project", "query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
        BaseClass = "ElectraModel",
        SequenceClassificationClass = "ElectraForSequenceClassification",
        TokenClassificationClass = "ElectraForTokenClassification",
        // HF ElectraClassificationHead: dropout → dense → gelu → dropout → out_proj on the first token.
        SequenceHead = (config, outputs) => new Heads.ClassificationHead(config.HiddenSize, outputs, config.ClassifierDropout, "gelu"),
    };

    private readonly BertEmbeddings embeddings;
    private Module<Tensor, Tensor>? embeddings_project;
    private readonly BertEncoder encoder;
    private readonly ElectraConfig config;

    /// <summary>Builds a randomly initialised encoder (load weights afterwards).</summary>
    public ElectraModel(ElectraConfig config) : base("electra")
    {
        this.config = (ElectraConfig)config.Validate();
        embeddings = new BertEmbeddings(config, config.EmbeddingSize);
        embeddings_project = config.EmbeddingSize != config.HiddenSize ? Linear(config.EmbeddingSize, config.HiddenSize) : null;
        encoder = new BertEncoder(config);
        RegisterComponents();
        InitializeWeights();
    }

    /// <inheritdoc />
    public override EncoderConfig Config => config;
    /// <inheritdoc />
    public override bool HasPooler => false;

    /// <inheritdoc />
    public override EncoderOutput forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor? attentionMask)
    {
        Tensor embedded = embeddings.call(inputIds, tokenTypeIds);
        // The residual stream stays float32 under bf16 autocast (the first LayerNorm adds to it), as BERT's does.
        Tensor hidden = embeddings_project is null ? embedded : Autocast.Linear(embeddings_project, embedded).to_type(embedded.dtype);
        Tensor? keyMask = BertEncoder.KeyMask(attentionMask);
        Tensor lastHiddenState = encoder.call(hidden, keyMask);
        return new EncoderOutput(lastHiddenState, null);
    }

    /// <inheritdoc />
    public override OnnxEncoderOutput ExportOnnx(OnnxGraphBuilder g, string prefix, bool pooled)
    {
        string embedded = embeddings.ExportOnnx(g, prefix + "embeddings.");
        string hidden = embeddings_project is null ? embedded : g.Linear(embeddings_project, prefix + "embeddings_project", embedded);
        return new OnnxEncoderOutput(encoder.ExportOnnx(g, prefix + "encoder.", hidden), null);
    }
}
