// The DistilBERT encoder: learned word and position embeddings (no token types), then post-LayerNorm transformer
// blocks. Field names are the HF DistilBertModel keys, so a state dict loads 1:1:
// embeddings.word_embeddings.weight, transformer.layer.0.attention.q_lin.weight, transformer.layer.0.ffn.lin1.weight, …
#pragma warning disable IDE1006 // field names are checkpoint key segments (LayerNorm, q_lin, sa_layer_norm), not C# style
using SharpTune.Native;
using System.Text.Json.Serialization;
using SharpTune.Export;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Models;

/// <summary>
/// DistilBERT's config with its own config.json keys (<c>dim</c>, <c>n_layers</c>, <c>n_heads</c>, …) and the
/// defaults of <c>transformers.DistilBertConfig</c> (<c>distilbert-base-uncased</c>).
/// </summary>
public sealed record DistilBertConfig : EncoderConfig
{
    /// <summary>Creates a config with DistilBERT's defaults.</summary>
    public DistilBertConfig() => ModelType = "distilbert";

    /// <summary>Width of every hidden state.</summary>
    [JsonPropertyName("dim")] public int Dim { get; init; } = 768;
    /// <summary>Number of transformer blocks.</summary>
    [JsonPropertyName("n_layers")] public int NLayers { get; init; } = 6;
    /// <summary>Attention heads per block; must divide <see cref="Dim"/>.</summary>
    [JsonPropertyName("n_heads")] public int NHeads { get; init; } = 12;
    /// <summary>Width of the feed-forward layer.</summary>
    [JsonPropertyName("hidden_dim")] public int HiddenDim { get; init; } = 3072;
    /// <summary>Dropout on embeddings and the feed-forward output.</summary>
    [JsonPropertyName("dropout")] public double Dropout { get; init; } = 0.1;
    /// <summary>Dropout on attention probabilities.</summary>
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; } = 0.1;
    /// <summary>Feed-forward activation (gelu or relu in HF's checkpoints).</summary>
    [JsonPropertyName("activation")] public string Activation { get; init; } = "gelu";
    /// <summary>Fixed sinusoidal position embeddings instead of learned ones; not supported (no released checkpoint uses them).</summary>
    [JsonPropertyName("sinusoidal_pos_embds")] public bool SinusoidalPosEmbds { get; init; }
    /// <summary>Dropout of HF's question-answering head (kept for round trips; SharpTune has no QA head).</summary>
    [JsonPropertyName("qa_dropout")] public double QaDropout { get; init; } = 0.1;
    /// <summary>Dropout of the sequence-classification head (HF's token head uses <see cref="Dropout"/>).</summary>
    [JsonPropertyName("seq_classif_dropout")] public double SeqClassifDropout { get; init; } = 0.2;

    /// <inheritdoc />
    [JsonIgnore] public override int HiddenSize { get => Dim; init => Dim = value; }
    /// <inheritdoc />
    [JsonIgnore] public override int NumHiddenLayers { get => NLayers; init => NLayers = value; }
    /// <inheritdoc />
    [JsonIgnore] public override int NumAttentionHeads { get => NHeads; init => NHeads = value; }
    /// <inheritdoc />
    [JsonIgnore] public override double ClassifierDropout => SeqClassifDropout;

    /// <summary>Width of one attention head.</summary>
    [JsonIgnore] public int HeadDim => Dim / NHeads;

    /// <inheritdoc />
    [JsonIgnore] protected override (string Hidden, string Layers, string Heads) SizeKeys => ("dim", "n_layers", "n_heads");

    /// <inheritdoc />
    public override EncoderConfig Validate(string source = "config.json")
    {
        base.Validate(source);
        Positive(source, "hidden_dim", HiddenDim);
        CheckActivation(source, "activation", Activation);
        Probability(source, "dropout", Dropout);
        Probability(source, "attention_dropout", AttentionDropout);
        Probability(source, "qa_dropout", QaDropout);
        Probability(source, "seq_classif_dropout", SeqClassifDropout);
        if (SinusoidalPosEmbds)
            throw new SharpTuneException($"{source}: sinusoidal_pos_embds true is not supported; SharpTune's DistilBERT has learned position embeddings only.");
        return this;
    }
}

/// <summary>The DistilBERT encoder (HF <c>DistilBertModel</c>): embeddings → transformer blocks; no token types, no pooler.</summary>
public sealed class DistilBertModel : Encoder
{
    /// <summary>DistilBERT in the registry: prefix <c>distilbert</c>, HF's class names, PEFT's LoRA targets, the pre_classifier head.</summary>
    public static readonly Architecture Registration = new()
    {
        ModelType = "distilbert",
        Prefix = "distilbert",
        ConfigType = typeof(DistilBertConfig),
        Create = (config, _) => new DistilBertModel((DistilBertConfig)config),
        Groups = new KeyGroups(["embeddings."], "transformer.layer.", null),
        LoraTargets = ["q_lin", "v_lin"],
        LinearLayers = ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
        BaseClass = "DistilBertModel",
        SequenceClassificationClass = "DistilBertForSequenceClassification",
        TokenClassificationClass = "DistilBertForTokenClassification",
        SequenceHead = (config, outputs) => new Heads.PreClassifierHead(config.HiddenSize, outputs, config.ClassifierDropout),
        SequenceDropoutKey = "seq_classif_dropout",
        // HF's DistilBertForTokenClassification drops out with the encoder's own dropout.
        TokenHead = (config, outputs) => new Heads.TokenClassificationHead(config.HiddenSize, outputs, ((DistilBertConfig)config).Dropout),
        TokenDropoutKey = null,
    };

    private readonly DistilBertEmbeddings embeddings;
    private readonly DistilBertTransformer transformer;
    private readonly DistilBertConfig config;

    /// <summary>Builds a randomly initialised encoder (load weights afterwards).</summary>
    public DistilBertModel(DistilBertConfig config) : base("distilbert")
    {
        this.config = (DistilBertConfig)config.Validate();
        embeddings = new DistilBertEmbeddings(config);
        transformer = new DistilBertTransformer(config);
        RegisterComponents();
        InitializeWeights();
    }

    /// <inheritdoc />
    public override EncoderConfig Config => config;
    /// <inheritdoc />
    public override bool HasPooler => false;

    /// <summary>Runs the encoder; <paramref name="tokenTypeIds"/> is ignored (DistilBERT has no token types).</summary>
    public override EncoderOutput forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor? attentionMask)
    {
        Tensor hidden = embeddings.call(inputIds);
        // HF masks scores with masked_fill(finfo.min); SDPA's boolean mask (-inf) gives the same softmax, since every
        // row keeps at least one real key ([CLS]).
        Tensor? keyMask = BertEncoder.KeyMask(attentionMask);
        Tensor lastHiddenState = transformer.call(hidden, keyMask);
        return new EncoderOutput(lastHiddenState, null);
    }

    /// <inheritdoc />
    public override OnnxEncoderOutput ExportOnnx(OnnxGraphBuilder g, string prefix, bool pooled)
    {
        string hidden = embeddings.ExportOnnx(g, prefix + "embeddings.");
        return new OnnxEncoderOutput(transformer.ExportOnnx(g, prefix + "transformer.", hidden), null);
    }
}

internal sealed class DistilBertEmbeddings : Module<Tensor, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly FastDropout dropout;

    public DistilBertEmbeddings(DistilBertConfig config) : base("embeddings")
    {
        word_embeddings = Embedding(config.VocabSize, config.Dim);
        position_embeddings = Embedding(config.MaxPositionEmbeddings, config.Dim);
        LayerNorm = nn.LayerNorm(config.Dim, 1e-12); // HF hard-codes eps 1e-12
        dropout = new FastDropout(config.Dropout);
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds)
    {
        long sequenceLength = inputIds.shape[1];
        if (sequenceLength > position_embeddings.weight!.shape[0])
            throw new SharpTuneException($"Input has {sequenceLength} tokens; the model's max_position_embeddings is {position_embeddings.weight.shape[0]}.");
        using var positionIds = Scalars.Arange(sequenceLength, inputIds.device).unsqueeze(0);
        Tensor words = word_embeddings.call(inputIds);
        Tensor positions = position_embeddings.call(positionIds);
        return dropout.call(LayerNorm.call(Scalars.Add(words, positions)));
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix)
    {
        string words = g.Embedding(word_embeddings, prefix + "word_embeddings", g.InputIds);
        string positions = g.LeadingRows(position_embeddings, prefix + "position_embeddings", g.InputIds);
        return g.LayerNorm(LayerNorm, prefix + "LayerNorm", g.Add(words, positions), 1e-12);
    }
}

internal sealed class DistilBertTransformer : Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<DistilBertBlock> layer;

    public DistilBertTransformer(DistilBertConfig config) : base("transformer")
    {
        layer = new ModuleList<DistilBertBlock>(Enumerable.Range(0, config.NLayers).Select(_ => new DistilBertBlock(config)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? keyMask)
    {
        foreach (DistilBertBlock block in layer) hidden = block.call(hidden, keyMask);
        return hidden;
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden)
    {
        int index = 0;
        foreach (DistilBertBlock block in layer) hidden = block.ExportOnnx(g, $"{prefix}layer.{index++}.", hidden);
        return hidden;
    }
}

// HF's TransformerBlock: post-LayerNorm residuals around attention and the feed-forward layer.
internal sealed class DistilBertBlock : Module<Tensor, Tensor?, Tensor>
{
    private readonly DistilBertAttention attention;
    private readonly LayerNorm sa_layer_norm;
    private readonly DistilBertFfn ffn;
    private readonly LayerNorm output_layer_norm;

    public DistilBertBlock(DistilBertConfig config) : base("layer")
    {
        attention = new DistilBertAttention(config);
        sa_layer_norm = nn.LayerNorm(config.Dim, 1e-12);
        ffn = new DistilBertFfn(config);
        output_layer_norm = nn.LayerNorm(config.Dim, 1e-12);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? keyMask)
    {
        Tensor attended = sa_layer_norm.call(Scalars.Add(attention.call(hidden, keyMask), hidden));
        return output_layer_norm.call(Scalars.Add(ffn.call(attended), attended));
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden)
    {
        string attended = g.LayerNorm(sa_layer_norm, prefix + "sa_layer_norm", g.Add(attention.ExportOnnx(g, prefix + "attention.", hidden), hidden), 1e-12);
        return g.LayerNorm(output_layer_norm, prefix + "output_layer_norm", g.Add(ffn.ExportOnnx(g, prefix + "ffn.", attended), attended), 1e-12);
    }
}

// HF's MultiHeadSelfAttention: softmax(QKᵀ/√d) V, then out_lin (no dropout after it).
internal sealed class DistilBertAttention : Module<Tensor, Tensor?, Tensor>
{
    private Module<Tensor, Tensor> q_lin;
    private Module<Tensor, Tensor> k_lin;
    private Module<Tensor, Tensor> v_lin;
    private Module<Tensor, Tensor> out_lin;
    private readonly int heads;
    private readonly int headDim;
    private readonly double attentionDropout;

    public DistilBertAttention(DistilBertConfig config) : base("attention")
    {
        q_lin = Linear(config.Dim, config.Dim);
        k_lin = Linear(config.Dim, config.Dim);
        v_lin = Linear(config.Dim, config.Dim);
        out_lin = Linear(config.Dim, config.Dim);
        heads = config.NHeads;
        headDim = config.HeadDim;
        attentionDropout = config.AttentionDropout;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? keyMask)
    {
        long batch = hidden.shape[0], sequence = hidden.shape[1];
        // [batch, sequence, dim] → [batch, heads, sequence, head_dim]
        Tensor q = Autocast.Linear(q_lin, hidden).view(batch, sequence, heads, headDim).transpose(1, 2);
        Tensor k = Autocast.Linear(k_lin, hidden).view(batch, sequence, heads, headDim).transpose(1, 2);
        Tensor v = Autocast.Linear(v_lin, hidden).view(batch, sequence, heads, headDim).transpose(1, 2);
        Tensor context = Attention.ScaledDotProduct(q, k, v, keyMask, attentionDropout, training);
        Tensor merged = context.transpose(1, 2).reshape(batch, sequence, heads * headDim);
        return Autocast.Linear(out_lin, merged);
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden)
    {
        string q = g.Linear(q_lin, prefix + "q_lin", hidden);
        string k = g.Linear(k_lin, prefix + "k_lin", hidden);
        string v = g.Linear(v_lin, prefix + "v_lin", hidden);
        return g.Linear(out_lin, prefix + "out_lin", g.Attention(q, k, v, heads, headDim));
    }
}

// lin1 → activation → lin2 → dropout.
internal sealed class DistilBertFfn : Module<Tensor, Tensor>
{
    private Module<Tensor, Tensor> lin1;
    private Module<Tensor, Tensor> lin2;
    private readonly FastDropout dropout;
    private readonly string activation;

    public DistilBertFfn(DistilBertConfig config) : base("ffn")
    {
        lin1 = Linear(config.Dim, config.HiddenDim);
        lin2 = Linear(config.HiddenDim, config.Dim);
        dropout = new FastDropout(config.Dropout);
        activation = config.Activation;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        Tensor expanded = Activations.Apply(activation, Autocast.Linear(lin1, hidden));
        return dropout.call(Autocast.Linear(lin2, expanded));
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden) =>
        g.Linear(lin2, prefix + "lin2", g.Activation(activation, g.Linear(lin1, prefix + "lin1", hidden)));
}
