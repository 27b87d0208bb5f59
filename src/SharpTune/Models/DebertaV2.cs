// DeBERTa-v2 and DeBERTa-v3 (one architecture: v3 is v2 with other weights and a different pre-training task).
// Field names are the Hugging Face DebertaV2Model checkpoint keys, so a state dict loads 1:1:
// embeddings.word_embeddings.weight, encoder.layer.0.attention.self.query_proj.weight, encoder.rel_embeddings.weight, …
// The maths follows transformers 4.45.2's modeling_deberta_v2.py: disentangled attention (content→content,
// content→position, position→content) over log-bucketed relative positions, and XSoftmax masking.
#pragma warning disable IDE1006 // field names are checkpoint key segments (LayerNorm, self, query_proj), not C# style
using System.Text.Json;
using System.Text.Json.Serialization;
using SharpTune.Export;
using SharpTune.Heads;
using SharpTune.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Models;

/// <summary>
/// The architecture of a DeBERTa-v2/v3 encoder, read from a Hugging Face <c>config.json</c> (snake_case keys, as
/// <c>transformers.DebertaV2Config</c>). Defaults are those of <c>microsoft/deberta-v3-base</c>.
/// </summary>
public sealed record DebertaV2Config : EncoderConfig
{
    /// <summary>The values <see cref="PosAttType"/> may hold.</summary>
    public static readonly IReadOnlyList<string> PositionAttentionTypes = ["c2p", "p2c"];

    /// <summary>Creates a config with <c>microsoft/deberta-v3-base</c>'s defaults.</summary>
    public DebertaV2Config()
    {
        ModelType = "deberta-v2";
        VocabSize = 128100;
        MaxPositionEmbeddings = 512;
    }

    /// <summary>Width of every hidden state.</summary>
    [JsonPropertyName("hidden_size")] public override int HiddenSize { get; init; } = 768;
    /// <summary>Number of transformer layers.</summary>
    [JsonPropertyName("num_hidden_layers")] public override int NumHiddenLayers { get; init; } = 12;
    /// <summary>Attention heads per layer; must divide <see cref="HiddenSize"/>.</summary>
    [JsonPropertyName("num_attention_heads")] public override int NumAttentionHeads { get; init; } = 12;
    /// <summary>Width of the feed-forward layer.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 3072;
    /// <summary>Feed-forward activation (gelu is the exact erf GELU).</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    /// <summary>Dropout on embeddings, sublayer outputs and the relative embeddings.</summary>
    [JsonPropertyName("hidden_dropout_prob")] public double HiddenDropoutProb { get; init; } = 0.1;
    /// <summary>Dropout on attention probabilities.</summary>
    [JsonPropertyName("attention_probs_dropout_prob")] public double AttentionProbsDropoutProb { get; init; } = 0.1;
    /// <summary>Number of token types; 0 (DeBERTa's usual value): no token-type embeddings, token types are ignored.</summary>
    [JsonPropertyName("type_vocab_size")] public int TypeVocabSize { get; init; }
    /// <summary>Epsilon of every LayerNorm.</summary>
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-7;
    /// <summary>Whether attention adds the content→position / position→content terms.</summary>
    [JsonPropertyName("relative_attention")] public bool RelativeAttention { get; init; } = true;
    /// <summary>Largest relative distance; below 1: <see cref="EncoderConfig.MaxPositionEmbeddings"/>.</summary>
    [JsonPropertyName("max_relative_positions")] public int MaxRelativePositions { get; init; } = -1;
    /// <summary>Number of log buckets of relative positions per side (×2 rows of rel_embeddings); 0 or less: no buckets.</summary>
    [JsonPropertyName("position_buckets")] public int PositionBuckets { get; init; } = 256;
    /// <summary>The relative terms attention adds: c2p (content→position), p2c (position→content). A string "p2c|c2p" is read too.</summary>
    [JsonPropertyName("pos_att_type"), JsonConverter(typeof(PosAttTypeConverter))]
    public IReadOnlyList<string> PosAttType { get; init; } = ["p2c", "c2p"];
    /// <summary>True: the relative embeddings go through each layer's query_proj/key_proj; false: through pos_query_proj/pos_key_proj.</summary>
    [JsonPropertyName("share_att_key")] public bool ShareAttKey { get; init; } = true;
    /// <summary>"layer_norm": encoder.LayerNorm normalises the relative embeddings; "none": they are used as stored.</summary>
    [JsonPropertyName("norm_rel_ebd")] public string NormRelEbd { get; init; } = "layer_norm";
    /// <summary>Whether absolute position embeddings are added to the word embeddings (false for DeBERTa-v2/v3).</summary>
    [JsonPropertyName("position_biased_input")] public bool PositionBiasedInput { get; init; }
    /// <summary>Width of the word embeddings when it differs from the hidden size (then embed_proj maps it); null: hidden size.</summary>
    [JsonPropertyName("embedding_size")] public int? EmbeddingSize { get; init; }
    /// <summary>Width of the sequence head's ContextPooler; null: hidden size (it must equal it).</summary>
    [JsonPropertyName("pooler_hidden_size")] public int? PoolerHiddenSize { get; init; }
    /// <summary>Dropout on the [CLS] state before the ContextPooler's dense layer.</summary>
    [JsonPropertyName("pooler_dropout")] public double PoolerDropout { get; init; }
    /// <summary>Activation after the ContextPooler's dense layer.</summary>
    [JsonPropertyName("pooler_hidden_act")] public string PoolerHiddenAct { get; init; } = "gelu";
    /// <summary>Dropout before the classifier; null: <see cref="HiddenDropoutProb"/>.</summary>
    [JsonPropertyName("cls_dropout")] public double? ClsDropout { get; init; }
    /// <summary>DeBERTa-v2-xlarge's convolution after the first layer; any value above 0 is rejected (not supported).</summary>
    [JsonPropertyName("conv_kernel_size")] public int? ConvKernelSize { get; init; }

    /// <inheritdoc />
    [JsonIgnore] public override double ClassifierDropout => ClsDropout ?? HiddenDropoutProb;
    /// <summary>Width of one attention head.</summary>
    [JsonIgnore] public int HeadDim => HiddenSize / NumAttentionHeads;
    /// <summary>The effective max_relative_positions.</summary>
    [JsonIgnore] public int RelativePositionLimit => MaxRelativePositions < 1 ? MaxPositionEmbeddings : MaxRelativePositions;
    /// <summary>Relative distances per side that have an embedding row (HF's <c>pos_ebd_size</c>, the attention span).</summary>
    [JsonIgnore] public int AttentionSpan => PositionBuckets > 0 ? PositionBuckets : RelativePositionLimit;
    /// <summary>The effective embedding width.</summary>
    [JsonIgnore] public int EmbeddingWidth => EmbeddingSize ?? HiddenSize;
    /// <summary>The effective ContextPooler width.</summary>
    [JsonIgnore] public int PoolerWidth => PoolerHiddenSize ?? HiddenSize;
    /// <summary>True when encoder.LayerNorm exists and normalises the relative embeddings.</summary>
    [JsonIgnore] public bool NormalizesRelativeEmbeddings => NormRelEbdParts.Contains("layer_norm");
    /// <summary>The scores are divided by sqrt(head_dim × this): 1 + the number of relative terms.</summary>
    [JsonIgnore] public int ScaleFactor => 1 + PosAttType.Count;

    private IEnumerable<string> NormRelEbdParts => NormRelEbd.ToLowerInvariant().Split('|').Select(p => p.Trim());

    /// <inheritdoc />
    public override EncoderConfig Validate(string source = "config.json")
    {
        base.Validate(source);
        Positive(source, "intermediate_size", IntermediateSize);
        if (TypeVocabSize < 0) throw new SharpTuneException($"{source}: type_vocab_size must be 0 or more, got {TypeVocabSize}.");
        CheckActivation(source, "hidden_act", HiddenAct);
        CheckActivation(source, "pooler_hidden_act", PoolerHiddenAct);
        Probability(source, "hidden_dropout_prob", HiddenDropoutProb);
        Probability(source, "attention_probs_dropout_prob", AttentionProbsDropoutProb);
        Probability(source, "pooler_dropout", PoolerDropout);
        if (ClsDropout is { } cls) Probability(source, "cls_dropout", cls);
        if (LayerNormEps <= 0 || double.IsNaN(LayerNormEps))
            throw new SharpTuneException($"{source}: layer_norm_eps must be positive, got {LayerNormEps}.");
        if (ConvKernelSize is > 0)
            throw new SharpTuneException($"{source}: conv_kernel_size {ConvKernelSize} is not supported (DeBERTa-v2's ConvLayer); only models without it (0 or absent, as DeBERTa-v3) load.");
        foreach (string type in PosAttType)
            if (!PositionAttentionTypes.Contains(type))
                throw new SharpTuneException($"{source}: pos_att_type '{type}' is not supported; allowed: {string.Join(", ", PositionAttentionTypes)}.");
        if (PosAttType.Distinct().Count() != PosAttType.Count)
            throw new SharpTuneException($"{source}: pos_att_type [{string.Join(", ", PosAttType)}] names a term twice.");
        // JSON null reaches this non-nullable property; HF would fail on it too, here it is named.
        if (NormRelEbd is null)
            throw new SharpTuneException($"{source}: norm_rel_ebd must be a string (layer_norm or none), got null.");
        foreach (string part in NormRelEbdParts)
            if (part is not ("layer_norm" or "none"))
                throw new SharpTuneException($"{source}: norm_rel_ebd '{NormRelEbd}' is not supported; allowed: layer_norm, none.");
        if (EmbeddingSize is { } width) Positive(source, "embedding_size", width);
        if (PoolerWidth != HiddenSize)
            throw new SharpTuneException($"{source}: pooler_hidden_size ({PoolerWidth}) must equal hidden_size ({HiddenSize}); the ContextPooler reads the [CLS] hidden state.");
        if (RelativeAttention && PositionBuckets > 0 && RelativePositionLimit <= PositionBuckets / 2 + 1)
            throw new SharpTuneException($"{source}: max_relative_positions ({RelativePositionLimit}) must exceed position_buckets / 2 + 1 ({PositionBuckets / 2 + 1}) for log buckets.");
        if (Extra is not null && Extra.TryGetValue("attention_head_size", out var headSize) && headSize.ValueKind == JsonValueKind.Number && headSize.GetInt32() != HeadDim)
            throw new SharpTuneException($"{source}: attention_head_size {headSize.GetInt32()} differs from hidden_size / num_attention_heads ({HeadDim}); not supported.");
        return this;
    }

    /// <summary>Reads pos_att_type as a list of strings, or as HF's older "p2c|c2p" string; writes a list.</summary>
    private sealed class PosAttTypeConverter : JsonConverter<IReadOnlyList<string>>
    {
        public override IReadOnlyList<string> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
        {
            JsonTokenType.Null => [],
            JsonTokenType.String => reader.GetString()!.ToLowerInvariant().Split('|').Select(p => p.Trim()).Where(p => p.Length > 0).ToList(),
            _ => JsonSerializer.Deserialize<List<string>>(ref reader, options) ?? [],
        };

        public override void Write(Utf8JsonWriter writer, IReadOnlyList<string> value, JsonSerializerOptions options) =>
            JsonSerializer.Serialize(writer, value.ToList(), options);
    }
}

/// <summary>
/// The DeBERTa-v2/v3 encoder, whose parameter names equal HF <c>DebertaV2Model</c> keys. It has no pooler: DeBERTa's
/// ContextPooler belongs to its sequence head (<see cref="ContextPoolerHead"/>). Its Linear layers run in bfloat16
/// inside an <see cref="Autocast"/> scope; the attention softmax, residual sums and LayerNorm stay float32.
/// </summary>
public sealed class DebertaV2Model : Encoder
{
    /// <summary>DeBERTa-v2/v3 in the registry: prefix <c>deberta</c>, HF's class names, PEFT's LoRA targets.</summary>
    public static readonly Architecture Registration = new()
    {
        ModelType = "deberta-v2",
        Prefix = "deberta",
        ConfigType = typeof(DebertaV2Config),
        Create = (config, _) => new DebertaV2Model((DebertaV2Config)config),
        Groups = new KeyGroups(["embeddings.", "encoder.rel_embeddings.", "encoder.LayerNorm."], "encoder.layer.", null),
        LoraTargets = ["query_proj", "value_proj"],
        LinearLayers = ["query_proj", "key_proj", "value_proj", "pos_key_proj", "pos_query_proj", "attention.output.dense", "intermediate.dense", "output.dense"],
        BaseClass = "DebertaV2Model",
        SequenceClassificationClass = "DebertaV2ForSequenceClassification",
        TokenClassificationClass = "DebertaV2ForTokenClassification",
        SequenceHead = (config, outputs) => ContextPoolerHead.For((DebertaV2Config)config, outputs),
        SequenceDropoutKey = "cls_dropout",
        // HF's DebertaV2ForTokenClassification drops out with hidden_dropout_prob (cls_dropout is its sequence head's).
        TokenHead = (config, outputs) => new TokenClassificationHead(config.HiddenSize, outputs, ((DebertaV2Config)config).HiddenDropoutProb),
        TokenDropoutKey = null,
        IgnoredKeys = ["embeddings.position_ids"],
    };

    private readonly DebertaV2Embeddings embeddings;
    private readonly DebertaV2Encoder encoder;
    private readonly DebertaV2Config config;

    /// <summary>Builds a randomly initialised encoder (load weights afterwards).</summary>
    public DebertaV2Model(DebertaV2Config config) : base("deberta")
    {
        this.config = (DebertaV2Config)config.Validate();
        embeddings = new DebertaV2Embeddings(config);
        encoder = new DebertaV2Encoder(config);
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
        using var ones = attentionMask is null ? torch.ones_like(inputIds) : null;
        Tensor mask = attentionMask ?? ones!;
        Tensor hidden = embeddings.call(inputIds, tokenTypeIds, mask);
        Tensor lastHiddenState = encoder.call(hidden, mask);
        return new EncoderOutput(lastHiddenState, null);
    }

    /// <inheritdoc />
    public override OnnxEncoderOutput ExportOnnx(OnnxGraphBuilder g, string prefix, bool pooled)
    {
        string hidden = embeddings.ExportOnnx(g, prefix + "embeddings.");
        return new OnnxEncoderOutput(encoder.ExportOnnx(g, prefix + "encoder.", hidden, config.MaxInputLength), null);
    }
}

/// <summary>Word (+ optional position and token-type) embeddings → embed_proj → LayerNorm → × mask → dropout.</summary>
internal sealed class DebertaV2Embeddings : Module<Tensor, Tensor?, Tensor, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding? position_embeddings;
    private readonly Embedding? token_type_embeddings;
    private readonly Linear? embed_proj;
    private readonly LayerNorm LayerNorm;
    private readonly FastDropout dropout;
    private readonly double layerNormEps;

    public DebertaV2Embeddings(DebertaV2Config config) : base("embeddings")
    {
        int width = config.EmbeddingWidth;
        word_embeddings = Embedding(config.VocabSize, width, padding_idx: config.PadTokenId);
        position_embeddings = config.PositionBiasedInput ? Embedding(config.MaxPositionEmbeddings, width) : null;
        token_type_embeddings = config.TypeVocabSize > 0 ? Embedding(config.TypeVocabSize, width) : null;
        embed_proj = width != config.HiddenSize ? Linear(width, config.HiddenSize, hasBias: false) : null;
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = new FastDropout(config.HiddenDropoutProb);
        layerNormEps = config.LayerNormEps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor mask)
    {
        Tensor sum = word_embeddings.call(inputIds);
        if (position_embeddings is not null)
        {
            long sequenceLength = inputIds.shape[1];
            if (sequenceLength > position_embeddings.weight!.shape[0])
                throw new SharpTuneException($"Input has {sequenceLength} tokens; the model's max_position_embeddings is {position_embeddings.weight.shape[0]}.");
            using var positionIds = Scalars.Arange(sequenceLength, inputIds.device).unsqueeze(0);
            sum = Scalars.Add(sum, position_embeddings.call(positionIds));
        }
        if (token_type_embeddings is not null)
        {
            using var zeros = tokenTypeIds is null ? torch.zeros_like(inputIds) : null;
            sum = Scalars.Add(sum, token_type_embeddings.call(tokenTypeIds ?? zeros!));
        }
        if (embed_proj is not null) sum = Autocast.Linear(embed_proj, sum).to_type(ScalarType.Float32);
        Tensor normalized = LayerNorm.call(sum);
        // Padding rows are zeroed before the first layer, as HF multiplies by the mask.
        Tensor masked = normalized * mask.unsqueeze(2).to_type(normalized.dtype);
        return dropout.call(masked);
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix)
    {
        string sum = g.Embedding(word_embeddings, prefix + "word_embeddings", g.InputIds);
        if (position_embeddings is not null) sum = g.Add(sum, g.LeadingRows(position_embeddings, prefix + "position_embeddings", g.InputIds));
        if (token_type_embeddings is not null) sum = g.Add(sum, g.Embedding(token_type_embeddings, prefix + "token_type_embeddings", g.TokenTypeIds));
        if (embed_proj is not null) sum = g.Linear(embed_proj, prefix + "embed_proj", sum);
        string normalized = g.LayerNorm(LayerNorm, prefix + "LayerNorm", sum, layerNormEps);
        return g.Mul(normalized, g.Unsqueeze(g.Cast(g.AttentionMask, Checkpoints.OnnxDataType.Float), [2]));
    }
}

/// <summary>What every layer's attention needs besides the hidden states; computed once per forward.</summary>
/// <param name="PairMask">[batch, 1, query, key] bool: mask_i AND mask_j.</param>
/// <param name="RelativePositions">[query, key] int64 bucketed relative positions, or null without relative attention.</param>
/// <param name="RelativeEmbeddings">[2 × span, hidden] (layer-normalised when configured), or null without relative attention.</param>
internal sealed record AttentionContext(Tensor PairMask, Tensor? RelativePositions, Tensor? RelativeEmbeddings);

/// <summary>The graph values of <see cref="AttentionContext"/>, built once for every layer.</summary>
/// <param name="Blocked">[batch, 1, query, key] bool: NOT (mask_i AND mask_j).</param>
/// <param name="RelativeEmbeddings">[2 × span, hidden], layer-normalised when configured (a constant), or null.</param>
/// <param name="ContentToPosition">[query, key] int64: the c2p gather index, clamp(δ(i, j) + span), or null.</param>
/// <param name="PositionToContent">[key, query] int64: the p2c gather index, clamp(span − δ(j, i)), or null.</param>
internal sealed record OnnxAttentionContext(string Blocked, string? RelativeEmbeddings, string? ContentToPosition, string? PositionToContent);

internal sealed class DebertaV2Encoder : Module<Tensor, Tensor, Tensor>
{
    private readonly ModuleList<DebertaV2Layer> layer;
    private readonly Embedding? rel_embeddings;
    private readonly LayerNorm? LayerNorm;
    private readonly int buckets;
    private readonly int maxRelativePositions;

    public DebertaV2Encoder(DebertaV2Config config) : base("encoder")
    {
        layer = new ModuleList<DebertaV2Layer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new DebertaV2Layer(config)).ToArray());
        rel_embeddings = config.RelativeAttention ? Embedding(config.AttentionSpan * 2, config.HiddenSize) : null;
        LayerNorm = config.NormalizesRelativeEmbeddings ? nn.LayerNorm(config.HiddenSize, config.LayerNormEps) : null;
        buckets = config.PositionBuckets;
        maxRelativePositions = config.RelativePositionLimit;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor mask)
    {
        long sequence = hidden.shape[1];
        using var tokens = mask.to_type(ScalarType.Bool);
        using var pairMask = tokens.unsqueeze(1).unsqueeze(2).logical_and(tokens.unsqueeze(1).unsqueeze(3));
        using var relativePositions = rel_embeddings is null ? null
            : RelativePositions.Build(sequence, sequence, buckets, maxRelativePositions, hidden.device);
        Tensor? relative = rel_embeddings?.weight;
        if (relative is not null && LayerNorm is not null) relative = LayerNorm.call(relative);
        var context = new AttentionContext(pairMask, relativePositions, relative);
        foreach (DebertaV2Layer block in layer) hidden = block.call(hidden, context);
        return hidden;
    }

    /// <summary>
    /// The graph of <see cref="forward"/> for inputs of up to <paramref name="maxLength"/> tokens. The bucketed relative
    /// positions depend only on i − j, so they are computed here by <see cref="RelativePositions"/> for every distance
    /// (as gather indices, a constant of 2·maxLength − 1 entries) and looked up in the graph.
    /// </summary>
    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden, int maxLength)
    {
        string tokens = g.Cast(g.AttentionMask, Checkpoints.OnnxDataType.Bool);
        string blocked = g.Not(g.And(g.Unsqueeze(tokens, [1, 2]), g.Unsqueeze(tokens, [1, 3])));
        string? relative = null, c2p = null, p2c = null;
        if (rel_embeddings is not null)
        {
            using var rows = LayerNorm is null ? rel_embeddings.weight!.detach().clone() : LayerNorm.call(rel_embeddings.weight!);
            relative = g.Initializer(prefix + "rel_embeddings.weight.normalized", rows);
            // δ(d) for d = −(maxLength − 1) … maxLength − 1, at index d + maxLength − 1.
            using var scope = torch.NewDisposeScope();
            Tensor negative = RelativePositions.Build(1, maxLength, buckets, maxRelativePositions, CPU)[0].flip(0).narrow(0, 0, maxLength - 1);
            Tensor positive = RelativePositions.Build(maxLength, 1, buckets, maxRelativePositions, CPU).select(1, 0);
            long[] distances = torch.cat([negative, positive]).data<long>().ToArray();
            long span = rel_embeddings.weight!.shape[0] / 2;
            string ContentToPositionTable() => g.Integers(prefix + "c2p_index", [.. distances.Select(d => Math.Clamp(d + span, 0, span * 2 - 1))]);
            string PositionToContentTable() => g.Integers(prefix + "p2c_index", [.. distances.Select(d => Math.Clamp(span - d, 0, span * 2 - 1))]);
            string length = g.Length(hidden, 1);
            string positions = g.Range(length);
            string offsets = g.Add(g.Sub(g.Unsqueeze(positions, [1]), g.Unsqueeze(positions, [0])), g.Constant((long)maxLength - 1));
            c2p = g.Gather(ContentToPositionTable(), offsets);
            p2c = g.Gather(PositionToContentTable(), offsets);
        }
        var context = new OnnxAttentionContext(blocked, relative, c2p, p2c);
        int index = 0;
        foreach (DebertaV2Layer block in layer) hidden = block.ExportOnnx(g, $"{prefix}layer.{index++}.", hidden, context);
        return hidden;
    }
}

/// <summary>HF's <c>build_relative_position</c> and <c>make_log_bucket_position</c>.</summary>
internal static class RelativePositions
{
    /// <summary>[query, key] int64: query index − key index, log-bucketed beyond ±bucketSize/2 when buckets are on.</summary>
    public static Tensor Build(long querySize, long keySize, int bucketSize, int maxPosition, Device device)
    {
        using var scope = torch.NewDisposeScope();
        Tensor queryIds = Scalars.Arange(querySize, device);
        Tensor keyIds = Scalars.Arange(keySize, device);
        Tensor relative = queryIds.unsqueeze(1) - keyIds.unsqueeze(0);
        if (bucketSize > 0 && maxPosition > 0) relative = LogBuckets(relative, bucketSize, maxPosition);
        return relative.MoveToOuterDisposeScope();
    }

    // Exact within ±mid; beyond, mid + ceil(log(|d| / mid) / log((max - 1) / mid) × (mid - 1)) with d's sign. In float32,
    // as torch computes it, so that the ceil rounds the same way.
    private static Tensor LogBuckets(Tensor relative, int bucketSize, int maxPosition)
    {
        long mid = bucketSize / 2;
        using Scalar midScalar = mid.ToScalar(), negativeMid = (-mid).ToScalar(), midLessOne = (mid - 1).ToScalar();
        Tensor sign = relative.sign();
        Tensor near = relative.lt(midScalar).logical_and(relative.gt(negativeMid));
        Tensor absolute = torch.where(near, torch.full_like(relative, midLessOne), relative.abs());
        Tensor logBase = torch.log(torch.tensor((float)((maxPosition - 1) / (double)mid), device: relative.device));
        Tensor logPosition = torch.ceil((torch.log(absolute.to_type(ScalarType.Float32).div(midScalar)) / logBase).mul(midLessOne)).add(midScalar, Scalars.One);
        Tensor bucket = torch.where(absolute.le(midScalar), relative.to_type(ScalarType.Float32), logPosition * sign);
        return bucket.to_type(ScalarType.Int64);
    }
}

internal sealed class DebertaV2Layer : Module<Tensor, AttentionContext, Tensor>
{
    private readonly DebertaV2Attention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertOutput output;

    public DebertaV2Layer(DebertaV2Config config) : base("layer")
    {
        attention = new DebertaV2Attention(config);
        intermediate = new BertIntermediate(config.HiddenSize, config.IntermediateSize, config.HiddenAct);
        output = new BertOutput(config.IntermediateSize, config.HiddenSize, config.LayerNormEps, config.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, AttentionContext context)
    {
        Tensor attended = attention.call(hidden, context);
        Tensor expanded = intermediate.call(attended);
        return output.call(expanded, attended);
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden, OnnxAttentionContext context)
    {
        string attended = attention.ExportOnnx(g, prefix + "attention.", hidden, context);
        string expanded = intermediate.ExportOnnx(g, prefix + "intermediate.", attended);
        return output.ExportOnnx(g, prefix + "output.", expanded, attended);
    }
}

internal sealed class DebertaV2Attention : Module<Tensor, AttentionContext, Tensor>
{
    private readonly DisentangledSelfAttention self;
    private readonly BertOutput output;

    public DebertaV2Attention(DebertaV2Config config) : base("attention")
    {
        self = new DisentangledSelfAttention(config);
        output = new BertOutput(config.HiddenSize, config.HiddenSize, config.LayerNormEps, config.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, AttentionContext context) => output.call(self.call(hidden, context), hidden);

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden, OnnxAttentionContext context) =>
        output.ExportOnnx(g, prefix + "output.", self.ExportOnnx(g, prefix + "self.", hidden, context), hidden);
}

/// <summary>
/// softmax((Q·Kᵀ + c2p + p2c) / sqrt(head_dim × scale_factor)) · V, where c2p[i, j] = Q_i · K_r[δ(i, j)] and
/// p2c[i, j] = K_j · Q_r[δ(j, i)], with K_r, Q_r the projected relative embeddings and δ the bucketed distance.
/// </summary>
internal sealed class DisentangledSelfAttention : Module<Tensor, AttentionContext, Tensor>
{
    private Module<Tensor, Tensor> query_proj;
    private Module<Tensor, Tensor> key_proj;
    private Module<Tensor, Tensor> value_proj;
    private Module<Tensor, Tensor>? pos_key_proj;
    private Module<Tensor, Tensor>? pos_query_proj;
    private readonly FastDropout pos_dropout;
    private readonly FastDropout dropout;
    private readonly int heads;
    private readonly int headDim;
    private readonly int span;
    private readonly float scale;
    private readonly Scalar scaleScalar, spanScalar, lastRelative;
    private static readonly Scalar Lowest = float.MinValue.ToScalar();
    private readonly bool relativeAttention;
    private readonly bool shareAttKey;
    private readonly bool contentToPosition;
    private readonly bool positionToContent;

    public DisentangledSelfAttention(DebertaV2Config config) : base("self")
    {
        heads = config.NumAttentionHeads;
        headDim = config.HeadDim;
        query_proj = Linear(config.HiddenSize, config.HiddenSize);
        key_proj = Linear(config.HiddenSize, config.HiddenSize);
        value_proj = Linear(config.HiddenSize, config.HiddenSize);
        relativeAttention = config.RelativeAttention;
        shareAttKey = config.ShareAttKey;
        contentToPosition = config.PosAttType.Contains("c2p");
        positionToContent = config.PosAttType.Contains("p2c");
        if (relativeAttention && !shareAttKey)
        {
            if (contentToPosition) pos_key_proj = Linear(config.HiddenSize, config.HiddenSize);
            if (positionToContent) pos_query_proj = Linear(config.HiddenSize, config.HiddenSize);
        }
        span = config.AttentionSpan;
        // HF: sqrt(float32(head_dim) × scale_factor), computed in float32.
        scale = MathF.Sqrt(headDim * (float)config.ScaleFactor);
        scaleScalar = scale.ToScalar();
        spanScalar = span.ToScalar();
        lastRelative = (span * 2 - 1).ToScalar();
        pos_dropout = new FastDropout(config.HiddenDropoutProb);
        dropout = new FastDropout(config.AttentionProbsDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, AttentionContext context)
    {
        long batch = hidden.shape[0], sequence = hidden.shape[1];
        Tensor q = SplitHeads(Autocast.Linear(query_proj, hidden));
        Tensor k = SplitHeads(Autocast.Linear(key_proj, hidden));
        Tensor v = SplitHeads(Autocast.Linear(value_proj, hidden));
        Tensor scores = torch.matmul(q, k.transpose(-1, -2)).div(scaleScalar);
        if (relativeAttention)
        {
            Tensor relative = pos_dropout.call(context.RelativeEmbeddings!);
            scores = Scalars.Add(scores, RelativeScores(q, k, context.RelativePositions!, relative));
        }
        Tensor probabilities = dropout.call(MaskedSoftmax(scores, context.PairMask));
        Tensor attended = torch.matmul(probabilities.to_type(v.dtype), v);
        return attended.transpose(1, 2).reshape(batch, sequence, heads * headDim);
    }

    // [batch, sequence, hidden] → [batch, heads, sequence, head_dim]; a 2-D [rows, hidden] becomes [1, heads, rows, head_dim].
    private Tensor SplitHeads(Tensor x) => x.dim() == 2
        ? x.view(1, x.shape[0], heads, headDim).transpose(1, 2)
        : x.view(x.shape[0], x.shape[1], heads, headDim).transpose(1, 2);

    private Tensor RelativeScores(Tensor q, Tensor k, Tensor relativePositions, Tensor relativeEmbeddings)
    {
        long batch = q.shape[0], queries = q.shape[2], keys = k.shape[2];
        long[] scoreShape = [batch, heads, queries, keys];
        Tensor rows = relativeEmbeddings.narrow(0, 0, span * 2);
        Tensor? score = null;
        if (contentToPosition)
        {
            // content→position: query i against the relative embedding of its distance to key j.
            Tensor positionKeys = SplitHeads(Autocast.Linear(shareAttKey ? key_proj : pos_key_proj!, rows));
            Tensor all = torch.matmul(q, positionKeys.transpose(-1, -2));
            Tensor index = relativePositions.add(spanScalar, Scalars.One).clamp(Scalars.Zero, lastRelative).expand(scoreShape);
            score = all.gather(-1, index).div(scaleScalar);
        }
        if (positionToContent)
        {
            // position→content: key j against the relative embedding of the query's distance to it (the transposed gather).
            Tensor positionQueries = SplitHeads(Autocast.Linear(shareAttKey ? query_proj : pos_query_proj!, rows));
            Tensor all = torch.matmul(k, positionQueries.transpose(-1, -2));
            Tensor index = relativePositions.neg().add(spanScalar, Scalars.One).clamp(Scalars.Zero, lastRelative).expand(batch, heads, keys, keys);
            Tensor term = all.gather(-1, index).transpose(-1, -2).div(scaleScalar);
            score = score is null ? term : Scalars.Add(score, term);
        }
        return score ?? torch.zeros(scoreShape, dtype: q.dtype, device: q.device);
    }

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string hidden, OnnxAttentionContext context)
    {
        string Heads(string x) => g.Transpose(g.Reshape(x, g.Constant([0L, 0L, heads, headDim])), [0, 2, 1, 3]);
        // [2 × span, hidden] → [1, heads, 2 × span, head_dim]
        string RowHeads(string x) => g.Transpose(g.Reshape(x, g.Constant([1L, -1L, heads, headDim])), [0, 2, 1, 3]);
        string KeysLast(string x) => g.Transpose(x, [0, 1, 3, 2]);
        string divisor = g.Scalar(scale);

        string q = Heads(g.Linear(query_proj, prefix + "query_proj", hidden));
        string k = Heads(g.Linear(key_proj, prefix + "key_proj", hidden));
        string v = Heads(g.Linear(value_proj, prefix + "value_proj", hidden));
        string scores = g.Div(g.MatMul(q, KeysLast(k)), divisor);
        if (relativeAttention)
        {
            string rows = context.RelativeEmbeddings!;
            string scoreShape = g.Shape(scores);
            string? relative = null;
            if (contentToPosition)
            {
                string positionKeys = RowHeads(shareAttKey ? g.Linear(key_proj, prefix + "key_proj", rows) : g.Linear(pos_key_proj!, prefix + "pos_key_proj", rows));
                string all = g.MatMul(q, KeysLast(positionKeys));
                relative = g.Div(g.GatherElements(all, g.Expand(context.ContentToPosition!, scoreShape), -1), divisor);
            }
            if (positionToContent)
            {
                string positionQueries = RowHeads(shareAttKey ? g.Linear(query_proj, prefix + "query_proj", rows) : g.Linear(pos_query_proj!, prefix + "pos_query_proj", rows));
                string all = g.MatMul(k, KeysLast(positionQueries));
                string term = g.Div(KeysLast(g.GatherElements(all, g.Expand(context.PositionToContent!, scoreShape), -1)), divisor);
                relative = relative is null ? term : g.Add(relative, term);
            }
            if (relative is not null) scores = g.Add(scores, relative);
        }
        string filled = g.Where(context.Blocked, g.Scalar(float.MinValue), scores);
        string probabilities = g.Where(context.Blocked, g.Scalar(0f), g.Softmax(filled, -1));
        string attended = g.Transpose(g.MatMul(probabilities, v), [0, 2, 1, 3]);
        return g.Reshape(attended, g.Constant([0L, 0L, (long)heads * headDim]));
    }

    // HF's XSoftmax: blocked scores get float32's minimum, and blocked entries (so whole padded query rows) are zero
    // afterwards. In float32 also under bf16 autocast, as torch.autocast runs softmax.
    private static Tensor MaskedSoftmax(Tensor scores, Tensor pairMask)
    {
        Tensor blocked = pairMask.logical_not();
        Tensor filled = scores.to_type(ScalarType.Float32).masked_fill(blocked, Lowest);
        return torch.softmax(filled, -1).masked_fill(blocked, Scalars.Zero);
    }
}
