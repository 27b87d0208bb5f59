// The BERT encoder (also MiniLM, which is this architecture with other sizes).
// Field names are the Hugging Face BertModel checkpoint keys, so a state dict loads 1:1:
// embeddings.word_embeddings.weight, encoder.layer.0.attention.self.query.weight, …, pooler.dense.weight.
#pragma warning disable IDE1006 // field names are checkpoint key segments (LayerNorm, self), not C# style
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Models;

/// <summary>What the encoder returns: every token's final hidden state, and the pooled [CLS] vector.</summary>
/// <param name="LastHiddenState">[batch, sequence, hidden].</param>
/// <param name="PooledOutput">[batch, hidden]: tanh(dense(first token)); null when the model has no pooler.</param>
public sealed record EncoderOutput(Tensor LastHiddenState, Tensor? PooledOutput);

/// <summary>
/// A BERT-family encoder whose parameter names equal HF <c>BertModel</c> keys. Its Linear layers run in bfloat16
/// inside an <see cref="Autocast"/> scope; residual sums and LayerNorm stay float32 there by type promotion.
/// </summary>
public sealed class BertModel : Module<Tensor, Tensor?, Tensor?, EncoderOutput>
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private readonly BertPooler? pooler;

    /// <summary>The architecture this model was built from.</summary>
    public BertConfig Config { get; }

    /// <summary>Builds a randomly initialised encoder (load weights afterwards).</summary>
    public BertModel(BertConfig config, bool addPoolingLayer = true) : base("bert")
    {
        Config = config.Validate();
        embeddings = new BertEmbeddings(config);
        encoder = new BertEncoder(config);
        pooler = addPoolingLayer ? new BertPooler(config) : null;
        RegisterComponents();
        InitializeWeights(config);
    }

    /// <summary>The embedding module (word, position and token-type embeddings + LayerNorm).</summary>
    public Module Embeddings => embeddings;
    /// <summary>The transformer layers, bottom to top.</summary>
    public IReadOnlyList<Module> Layers => encoder.Layers;
    /// <summary>The pooler (dense + tanh on the first token), or null.</summary>
    public Module? Pooler => pooler;

    /// <summary>
    /// Runs the encoder. <paramref name="inputIds"/>: [batch, sequence] int64; <paramref name="tokenTypeIds"/>
    /// (zeros when null) and <paramref name="attentionMask"/> (1 = token, 0 = padding; all ones when null) alike.
    /// </summary>
    public override EncoderOutput forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor? attentionMask)
    {
        Tensor hidden = embeddings.call(inputIds, tokenTypeIds);
        // [batch, 1, 1, sequence]: true where a key may be attended to; broadcast over heads and queries.
        Tensor? keyMask = attentionMask is null ? null : attentionMask.to_type(ScalarType.Bool).unsqueeze(1).unsqueeze(2);
        Tensor lastHiddenState = encoder.call(hidden, keyMask);
        Tensor? pooled = pooler?.call(lastHiddenState);
        return new EncoderOutput(lastHiddenState, pooled);
    }

    // As HF's BertPreTrainedModel._init_weights: normal(0, initializer_range) for Linear and Embedding
    // weights, zero biases, LayerNorm weight 1 and bias 0; the padding embedding row is zero.
    private void InitializeWeights(BertConfig config)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            if (name.EndsWith("LayerNorm.weight", StringComparison.Ordinal)) parameter.fill_(1.0);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) parameter.zero_();
            else parameter.normal_(0, config.InitializerRange);
        }
        embeddings.ZeroPaddingRow(config.PadTokenId);
    }
}

internal sealed class BertEmbeddings : Module<Tensor, Tensor?, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public BertEmbeddings(BertConfig config) : base("embeddings")
    {
        word_embeddings = Embedding(config.VocabSize, config.HiddenSize);
        position_embeddings = Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        token_type_embeddings = Embedding(config.TypeVocabSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    public void ZeroPaddingRow(int padTokenId) => word_embeddings.weight![padTokenId].zero_();

    public override Tensor forward(Tensor inputIds, Tensor? tokenTypeIds)
    {
        long sequenceLength = inputIds.shape[1];
        if (sequenceLength > position_embeddings.weight!.shape[0])
            throw new SharpTuneException($"Input has {sequenceLength} tokens; the model's max_position_embeddings is {position_embeddings.weight.shape[0]}.");
        using var positionIds = torch.arange(sequenceLength, dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        using var zeros = tokenTypeIds is null ? torch.zeros_like(inputIds) : null;
        Tensor words = word_embeddings.call(inputIds);
        Tensor positions = position_embeddings.call(positionIds);
        Tensor types = token_type_embeddings.call(tokenTypeIds ?? zeros!);
        Tensor sum = words + positions + types;
        return dropout.call(LayerNorm.call(sum));
    }
}

internal sealed class BertEncoder : Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig config) : base("encoder")
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new BertLayer(config)).ToArray());
        RegisterComponents();
    }

    public IReadOnlyList<Module> Layers => layer.ToList();

    public override Tensor forward(Tensor hidden, Tensor? keyMask)
    {
        foreach (BertLayer block in layer) hidden = block.call(hidden, keyMask);
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
        intermediate = new BertIntermediate(config);
        output = new BertOutput(config, config.IntermediateSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? keyMask)
    {
        Tensor attended = attention.call(hidden, keyMask);
        Tensor expanded = intermediate.call(attended);
        return output.call(expanded, attended);
    }
}

internal sealed class BertAttention : Module<Tensor, Tensor?, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertOutput output;

    public BertAttention(BertConfig config) : base("attention")
    {
        self = new BertSelfAttention(config);
        output = new BertOutput(config, config.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? keyMask) => output.call(self.call(hidden, keyMask), hidden);
}

internal sealed class BertSelfAttention : Module<Tensor, Tensor?, Tensor>, ILinearHost
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

    public IReadOnlyList<string> LinearNames => ["query", "key", "value"];

    public Module<Tensor, Tensor> GetLinear(string name) => name switch
    {
        "query" => query, "key" => key, "value" => value, _ => throw new ArgumentException(name),
    };

    public void SetLinear(string name, Module<Tensor, Tensor> replacement)
    {
        _ = GetLinear(name);
        if (name == "query") query = replacement;
        else if (name == "key") key = replacement;
        else value = replacement;
        _internal_submodules.Remove(name);
        register_module(name, replacement);
    }

    public override Tensor forward(Tensor hidden, Tensor? keyMask)
    {
        long batch = hidden.shape[0], sequence = hidden.shape[1];
        // [batch, sequence, hidden] → [batch, heads, sequence, head_dim]
        Tensor q = Autocast.Linear(query, hidden).view(batch, sequence, heads, headDim).transpose(1, 2);
        Tensor k = Autocast.Linear(key, hidden).view(batch, sequence, heads, headDim).transpose(1, 2);
        Tensor v = Autocast.Linear(value, hidden).view(batch, sequence, heads, headDim).transpose(1, 2);
        Tensor context = functional.scaled_dot_product_attention(q, k, v, keyMask, training ? attentionDropout : 0.0);
        return context.transpose(1, 2).reshape(batch, sequence, heads * headDim);
    }
}

internal sealed class BertIntermediate : Module<Tensor, Tensor>, ILinearHost
{
    private Module<Tensor, Tensor> dense;
    private readonly string activation;

    public BertIntermediate(BertConfig config) : base("intermediate")
    {
        dense = Linear(config.HiddenSize, config.IntermediateSize);
        activation = config.HiddenAct;
        RegisterComponents();
    }

    public IReadOnlyList<string> LinearNames => ["dense"];

    public Module<Tensor, Tensor> GetLinear(string name) => name == "dense" ? dense : throw new ArgumentException(name);

    public void SetLinear(string name, Module<Tensor, Tensor> replacement)
    {
        _ = GetLinear(name);
        dense = replacement;
        _internal_submodules.Remove(name);
        register_module(name, replacement);
    }

    public override Tensor forward(Tensor hidden) => Activations.Apply(activation, Autocast.Linear(dense, hidden));
}

// dense → dropout → residual add → LayerNorm. HF has two copies of this class (BertSelfOutput after attention,
// BertOutput after the feed-forward layer) that differ only in the input width; here it is one class used twice.
internal sealed class BertOutput : Module<Tensor, Tensor, Tensor>, ILinearHost
{
    private Module<Tensor, Tensor> dense;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public BertOutput(BertConfig config, int inputSize) : base("output")
    {
        dense = Linear(inputSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    public IReadOnlyList<string> LinearNames => ["dense"];

    public Module<Tensor, Tensor> GetLinear(string name) => name == "dense" ? dense : throw new ArgumentException(name);

    public void SetLinear(string name, Module<Tensor, Tensor> replacement)
    {
        _ = GetLinear(name);
        dense = replacement;
        _internal_submodules.Remove(name);
        register_module(name, replacement);
    }

    public override Tensor forward(Tensor input, Tensor residual) => LayerNorm.call(dropout.call(Autocast.Linear(dense, input)) + residual);
}

internal sealed class BertPooler : Module<Tensor, Tensor>, ILinearHost
{
    private Module<Tensor, Tensor> dense;

    public BertPooler(BertConfig config) : base("pooler")
    {
        dense = Linear(config.HiddenSize, config.HiddenSize);
        RegisterComponents();
    }

    public IReadOnlyList<string> LinearNames => ["dense"];

    public Module<Tensor, Tensor> GetLinear(string name) => name == "dense" ? dense : throw new ArgumentException(name);

    public void SetLinear(string name, Module<Tensor, Tensor> replacement)
    {
        _ = GetLinear(name);
        dense = replacement;
        _internal_submodules.Remove(name);
        register_module(name, replacement);
    }

    public override Tensor forward(Tensor lastHiddenState)
    {
        Tensor first = lastHiddenState.select(1, 0);
        // Heads are float32: under bf16 autocast the pooled vector goes back to float32 (a no-op otherwise).
        return torch.tanh(Autocast.Linear(dense, first)).to_type(ScalarType.Float32);
    }
}

/// <summary>
/// A module whose Linear layers may be wrapped (e.g. by a LoRA adapter), addressed by their field name,
/// which is also their checkpoint key segment (query, key, value, dense).
/// </summary>
public interface ILinearHost
{
    /// <summary>Field names of the module's Linear layers.</summary>
    IReadOnlyList<string> LinearNames { get; }
    /// <summary>The layer held under <paramref name="name"/> (a Linear, or what wrapped it).</summary>
    Module<Tensor, Tensor> GetLinear(string name);
    /// <summary>Replaces the layer held under <paramref name="name"/>; its key segment stays the same.</summary>
    void SetLinear(string name, Module<Tensor, Tensor> replacement);
}

/// <summary>The feed-forward activations HF configs name in <c>hidden_act</c>.</summary>
public static class Activations
{
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
