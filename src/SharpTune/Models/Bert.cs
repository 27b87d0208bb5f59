// The BERT encoder (also MiniLM, which is this architecture with other sizes); RoBERTa reuses its classes.
// Field names are the Hugging Face BertModel checkpoint keys, so a state dict loads 1:1:
// embeddings.word_embeddings.weight, encoder.layer.0.attention.self.query.weight, …, pooler.dense.weight.
#pragma warning disable IDE1006 // field names are checkpoint key segments (LayerNorm, self), not C# style
using SharpTune.Export;
using SharpTune.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Models;

/// <summary>
/// The BERT encoder, whose parameter names equal HF <c>BertModel</c> keys. Its Linear layers run in bfloat16
/// inside an <see cref="Autocast"/> scope; residual sums and LayerNorm stay float32 there by type promotion.
/// RoBERTa and XLM-RoBERTa are this class with other embeddings (<see cref="RobertaModel"/>).
/// </summary>
public class BertModel : Encoder
{
    /// <summary>BERT in the registry: prefix <c>bert</c>, HF's class names, PEFT's LoRA targets.</summary>
    public static readonly Architecture Registration = new()
    {
        ModelType = "bert",
        Prefix = "bert",
        ConfigType = typeof(BertConfig),
        Create = (config, pooler) => new BertModel((BertConfig)config, pooler),
        Groups = new KeyGroups(["embeddings."], "encoder.layer.", "pooler."),
        LoraTargets = ["query", "value"],
        LinearLayers = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
        BaseClass = "BertModel",
        SequenceClassificationClass = "BertForSequenceClassification",
        TokenClassificationClass = "BertForTokenClassification",
        SequenceHead = (config, outputs) => new Heads.PooledHead(config.HiddenSize, outputs, config.ClassifierDropout),
    };

    private readonly nn.Module<Tensor, Tensor?, Tensor> embeddings;
    private readonly BertEncoder encoder;
    private readonly BertPooler? pooler;
    private readonly BertConfig config;

    /// <summary>Builds a randomly initialised encoder (load weights afterwards).</summary>
    public BertModel(BertConfig config, bool addPoolingLayer = true) : this(config, new BertEmbeddings(config), addPoolingLayer) { }

    /// <summary>BERT's layers and pooler under other embeddings (RoBERTa's).</summary>
    protected BertModel(BertConfig config, nn.Module<Tensor, Tensor?, Tensor> embeddings, bool addPoolingLayer) : base("bert")
    {
        this.config = (BertConfig)config.Validate();
        this.embeddings = embeddings;
        encoder = new BertEncoder(config);
        pooler = addPoolingLayer ? new BertPooler(config) : null;
        RegisterComponents();
        InitializeWeights();
    }

    /// <inheritdoc />
    public override EncoderConfig Config => config;
    /// <inheritdoc />
    public override bool HasPooler => pooler is not null;

    /// <inheritdoc />
    public override EncoderOutput forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor? attentionMask)
    {
        Tensor hidden = embeddings.call(inputIds, tokenTypeIds);
        Tensor? keyMask = BertEncoder.KeyMask(attentionMask);
        Tensor lastHiddenState = encoder.call(hidden, keyMask);
        Tensor? pooled = pooler?.call(lastHiddenState);
        return new EncoderOutput(lastHiddenState, pooled);
    }

    /// <inheritdoc />
    public override OnnxEncoderOutput ExportOnnx(OnnxGraphBuilder g, string prefix, bool pooled)
    {
        string hidden = ((BertEmbeddings)embeddings).ExportOnnx(g, prefix + "embeddings.");
        string lastHiddenState = encoder.ExportOnnx(g, prefix + "encoder.", hidden);
        string? pooledOutput = pooled ? pooler?.ExportOnnx(g, prefix + "pooler.", lastHiddenState) : null;
        return new OnnxEncoderOutput(lastHiddenState, pooledOutput);
    }
}

// Word + position + token-type embeddings, LayerNorm, dropout. RoBERTa's embeddings differ only in PositionIds.
internal class BertEmbeddings : Module<Tensor, Tensor?, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly FastDropout dropout;
    private readonly double layerNormEps;

    /// <summary><paramref name="width"/>: the embedding width when it differs from the hidden size (ELECTRA's embedding_size).</summary>
    public BertEmbeddings(BertConfig config, int? width = null) : base("embeddings")
    {
        int size = width ?? config.HiddenSize;
        word_embeddings = Embedding(config.VocabSize, size);
        position_embeddings = Embedding(config.MaxPositionEmbeddings, size);
        token_type_embeddings = Embedding(config.TypeVocabSize, size);
        LayerNorm = nn.LayerNorm(size, config.LayerNormEps);
        dropout = new FastDropout(config.HiddenDropoutProb);
        layerNormEps = config.LayerNormEps;
        RegisterComponents();
    }

    /// <summary>BERT's positions: 0 … L-1 for every row, [1, L].</summary>
    protected virtual Tensor PositionIds(Tensor inputIds) =>
        Scalars.Arange(inputIds.shape[1], inputIds.device).unsqueeze(0);

    /// <summary>The position of the first token (<see cref="PositionIds"/> never exceeds it plus L-1): 0 for BERT.</summary>
    protected virtual long FirstPosition => 0;

    public override Tensor forward(Tensor inputIds, Tensor? tokenTypeIds)
    {
        // Checked on the shape, not on the position ids: reading their maximum back would stop a GPU on every forward.
        long length = inputIds.shape[1], table = position_embeddings.weight!.shape[0];
        if (FirstPosition + length > table)
            throw new SharpTuneException(
                $"Input has {length} tokens, more than the model's max_position_embeddings ({table}) allow{(FirstPosition > 0 ? $" (positions start at {FirstPosition}: at most {table - FirstPosition} tokens)" : "")}.");
        using var positionIds = PositionIds(inputIds);
        using var zeros = tokenTypeIds is null ? torch.zeros_like(inputIds) : null;
        Tensor words = word_embeddings.call(inputIds);
        Tensor positions = position_embeddings.call(positionIds);
        Tensor types = token_type_embeddings.call(tokenTypeIds ?? zeros!);
        Tensor sum = Scalars.Add(Scalars.Add(words, positions), types);
        return dropout.call(LayerNorm.call(sum));
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix)
    {
        string words = g.Embedding(word_embeddings, prefix + "word_embeddings", g.InputIds);
        string positions = PositionsOnnx(g, position_embeddings, prefix + "position_embeddings");
        string types = TokenTypesOnnx
            ? g.Embedding(token_type_embeddings, prefix + "token_type_embeddings", g.TokenTypeIds)
            : g.Row(token_type_embeddings, prefix + "token_type_embeddings.weight.0", 0);
        string sum = g.Add(g.Add(words, positions), types);
        return g.LayerNorm(LayerNorm, prefix + "LayerNorm", sum, layerNormEps);
    }

    /// <summary>The graph of <see cref="PositionIds"/> looked up in <paramref name="table"/>: BERT's first L rows.</summary>
    protected virtual string PositionsOnnx(OnnxGraphBuilder g, Embedding table, string key) => g.LeadingRows(table, key, g.InputIds);

    /// <summary>True: the graph reads the token_type_ids input; false: every token has type 0 (RoBERTa's single type).</summary>
    protected virtual bool TokenTypesOnnx => true;
}

internal sealed class BertEncoder : Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig config) : base("encoder")
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new BertLayer(config)).ToArray());
        RegisterComponents();
    }

    /// <summary>[batch, 1, 1, sequence]: true where a key may be attended to; broadcast over heads and queries.</summary>
    public static Tensor? KeyMask(Tensor? attentionMask) =>
        attentionMask is null ? null : attentionMask.to_type(ScalarType.Bool).unsqueeze(1).unsqueeze(2);

    public override Tensor forward(Tensor hidden, Tensor? keyMask)
    {
        foreach (BertLayer block in layer) hidden = block.call(hidden, keyMask);
        return hidden;
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden)
    {
        int index = 0;
        foreach (BertLayer block in layer) hidden = block.ExportOnnx(g, $"{prefix}layer.{index++}.", hidden);
        return hidden;
    }
}

internal sealed class BertLayer : Module<Tensor, Tensor?, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertOutput output;

    public BertLayer(BertConfig config) : base("layer")
    {
        attention = new BertAttention(config);
        intermediate = new BertIntermediate(config.HiddenSize, config.IntermediateSize, config.HiddenAct);
        output = new BertOutput(config.IntermediateSize, config.HiddenSize, config.LayerNormEps, config.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? keyMask)
    {
        Tensor attended = attention.call(hidden, keyMask);
        Tensor expanded = intermediate.call(attended);
        return output.call(expanded, attended);
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden)
    {
        string attended = attention.ExportOnnx(g, prefix + "attention.", hidden);
        string expanded = intermediate.ExportOnnx(g, prefix + "intermediate.", attended);
        return output.ExportOnnx(g, prefix + "output.", expanded, attended);
    }
}

internal sealed class BertAttention : Module<Tensor, Tensor?, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertOutput output;

    public BertAttention(BertConfig config) : base("attention")
    {
        self = new BertSelfAttention(config);
        output = new BertOutput(config.HiddenSize, config.HiddenSize, config.LayerNormEps, config.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? keyMask) => output.call(self.call(hidden, keyMask), hidden);

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden) =>
        output.ExportOnnx(g, prefix + "output.", self.ExportOnnx(g, prefix + "self.", hidden), hidden);
}

internal sealed class BertSelfAttention : Module<Tensor, Tensor?, Tensor>
{
    private Module<Tensor, Tensor> query;
    private Module<Tensor, Tensor> key;
    private Module<Tensor, Tensor> value;
    private readonly int heads;
    private readonly int headDim;
    private readonly double attentionDropout;

    public BertSelfAttention(BertConfig config) : base("self")
    {
        query = Linear(config.HiddenSize, config.HiddenSize);
        key = Linear(config.HiddenSize, config.HiddenSize);
        value = Linear(config.HiddenSize, config.HiddenSize);
        heads = config.NumAttentionHeads;
        headDim = config.HeadDim;
        attentionDropout = config.AttentionProbsDropoutProb;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? keyMask)
    {
        long batch = hidden.shape[0], sequence = hidden.shape[1];
        // [batch, sequence, hidden] → [batch, heads, sequence, head_dim]
        Tensor q = Autocast.Linear(query, hidden).view(batch, sequence, heads, headDim).transpose(1, 2);
        Tensor k = Autocast.Linear(key, hidden).view(batch, sequence, heads, headDim).transpose(1, 2);
        Tensor v = Autocast.Linear(value, hidden).view(batch, sequence, heads, headDim).transpose(1, 2);
        Tensor context = Attention.ScaledDotProduct(q, k, v, keyMask, attentionDropout, training);
        return context.transpose(1, 2).reshape(batch, sequence, heads * headDim);
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden)
    {
        string q = g.Linear(query, prefix + "query", hidden);
        string k = g.Linear(key, prefix + "key", hidden);
        string v = g.Linear(value, prefix + "value", hidden);
        return g.Attention(q, k, v, heads, headDim);
    }
}

internal sealed class BertIntermediate : Module<Tensor, Tensor>
{
    private Module<Tensor, Tensor> dense;
    private readonly string activation;

    public BertIntermediate(int hiddenSize, int intermediateSize, string activation) : base("intermediate")
    {
        dense = Linear(hiddenSize, intermediateSize);
        this.activation = activation;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden) => Activations.Apply(activation, Autocast.Linear(dense, hidden));

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden) =>
        g.Activation(activation, g.Linear(dense, prefix + "dense", hidden));
}

// dense → dropout → residual add → LayerNorm. HF has two copies of this class (BertSelfOutput after attention,
// BertOutput after the feed-forward layer) that differ only in the input width; here it is one class used twice,
// by BERT and by DeBERTa (whose layers have the same sublayers around another attention).
internal sealed class BertOutput : Module<Tensor, Tensor, Tensor>
{
    private Module<Tensor, Tensor> dense;
    private readonly LayerNorm LayerNorm;
    private readonly FastDropout dropout;
    private readonly double layerNormEps;

    public BertOutput(int inputSize, int hiddenSize, double layerNormEps, double dropoutProbability) : base("output")
    {
        dense = Linear(inputSize, hiddenSize);
        LayerNorm = nn.LayerNorm(hiddenSize, layerNormEps);
        dropout = new FastDropout(dropoutProbability);
        this.layerNormEps = layerNormEps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input, Tensor residual) => LayerNorm.call(Scalars.Add(dropout.call(Autocast.Linear(dense, input)), residual));

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string input, string residual) =>
        g.LayerNorm(LayerNorm, prefix + "LayerNorm", g.Add(g.Linear(dense, prefix + "dense", input), residual), layerNormEps);
}

internal sealed class BertPooler : Module<Tensor, Tensor>
{
    private Module<Tensor, Tensor> dense;

    public BertPooler(BertConfig config) : base("pooler")
    {
        dense = Linear(config.HiddenSize, config.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor lastHiddenState)
    {
        Tensor first = lastHiddenState.select(1, 0);
        // Heads are float32: under bf16 autocast the pooled vector goes back to float32 (a no-op otherwise).
        return torch.tanh(Autocast.Linear(dense, first)).to_type(ScalarType.Float32);
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string lastHiddenState) =>
        g.Activation("tanh", g.Linear(dense, prefix + "dense", g.FirstToken(lastHiddenState)));
}

/// <summary>The feed-forward activations HF configs name in <c>hidden_act</c>.</summary>
public static class Activations
{
    /// <summary>The names <see cref="Apply"/> accepts.</summary>
    public static readonly IReadOnlyList<string> Names = ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh"];

    /// <summary>Applies the named activation.</summary>
    public static Tensor Apply(string name, Tensor x) => name switch
    {
        "gelu" => functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" => functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        "relu" => functional.relu(x),
        "silu" or "swish" => functional.silu(x),
        "tanh" => torch.tanh(x),
        _ => throw new SharpTuneException($"hidden_act '{name}' is not supported."),
    };
}
