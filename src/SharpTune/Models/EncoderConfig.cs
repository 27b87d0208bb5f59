using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace SharpTune.Models;

/// <summary>
/// What every encoder architecture's <c>config.json</c> says, whatever its own key names are: the model type, the
/// vocabulary, the width and depth, the padding id. One sealed record per architecture derives from it
/// (<see cref="BertConfig"/>, <see cref="RobertaConfig"/>, …) and reads its own snake_case keys; the
/// <see cref="Architectures"/> registry picks the record from <c>model_type</c>.
/// </summary>
public abstract record EncoderConfig
{
    /// <summary>HF model type (bert, roberta, xlm-roberta, distilbert, electra, deberta-v2).</summary>
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "";
    /// <summary>Number of rows of the word-embedding matrix.</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 30522;
    /// <summary>Number of learned positions (the longest input, plus the offset of architectures that have one).</summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 512;
    /// <summary>Id of the padding token.</summary>
    [JsonPropertyName("pad_token_id")] public int PadTokenId { get; init; }
    /// <summary>Standard deviation of the weight initialisation of new modules.</summary>
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;

    /// <summary>Width of every hidden state (BERT's <c>hidden_size</c>, DistilBERT's <c>dim</c>).</summary>
    [JsonIgnore] public abstract int HiddenSize { get; init; }
    /// <summary>Number of transformer layers (BERT's <c>num_hidden_layers</c>, DistilBERT's <c>n_layers</c>).</summary>
    [JsonIgnore] public abstract int NumHiddenLayers { get; init; }
    /// <summary>Attention heads per layer.</summary>
    [JsonIgnore] public abstract int NumAttentionHeads { get; init; }
    /// <summary>Dropout a new head uses by default: the architecture's classifier dropout, else its hidden dropout.</summary>
    [JsonIgnore] public abstract double ClassifierDropout { get; }

    /// <summary>The config.json keys of <see cref="HiddenSize"/>, <see cref="NumHiddenLayers"/> and <see cref="NumAttentionHeads"/>, for messages.</summary>
    [JsonIgnore] protected virtual (string Hidden, string Layers, string Heads) SizeKeys => ("hidden_size", "num_hidden_layers", "num_attention_heads");

    /// <summary>The longest input in tokens (positions an input may use).</summary>
    [JsonIgnore] public virtual int MaxInputLength => MaxPositionEmbeddings;

    /// <summary>Keys of config.json that the record does not model, kept so that saving loses nothing.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>Throws a <see cref="SharpTuneException"/> naming the first bad field; derived records add their own checks.</summary>
    public virtual EncoderConfig Validate(string source = "config.json")
    {
        Positive(source, "vocab_size", VocabSize);
        var (hidden, layers, heads) = SizeKeys;
        Positive(source, hidden, HiddenSize);
        Positive(source, layers, NumHiddenLayers);
        Positive(source, heads, NumAttentionHeads);
        Positive(source, "max_position_embeddings", MaxPositionEmbeddings);
        if (HiddenSize % NumAttentionHeads != 0)
            throw new SharpTuneException($"{source}: {hidden} ({HiddenSize}) must be a multiple of {heads} ({NumAttentionHeads}).");
        if (PadTokenId < 0 || PadTokenId >= VocabSize)
            throw new SharpTuneException($"{source}: pad_token_id ({PadTokenId}) must be in [0, vocab_size={VocabSize}).");
        return this;
    }

    /// <summary>Throws unless <paramref name="value"/> is positive.</summary>
    protected static void Positive(string source, string field, long value)
    {
        if (value <= 0) throw new SharpTuneException($"{source}: {field} must be positive, got {value}.");
    }

    /// <summary>Throws unless <paramref name="value"/> is a probability in [0, 1).</summary>
    protected static void Probability(string source, string field, double value)
    {
        if (value < 0 || value >= 1 || double.IsNaN(value))
            throw new SharpTuneException($"{source}: {field} must be in [0, 1), got {value}.");
    }

    /// <summary>Throws unless <paramref name="name"/> is an activation <see cref="Activations"/> knows.</summary>
    protected static void CheckActivation(string source, string field, string name)
    {
        if (!Activations.Names.Contains(name))
            throw new SharpTuneException($"{source}: {field} '{name}' is not supported; allowed: {string.Join(", ", Activations.Names)}.");
    }

    /// <summary>Options shared by every config.json read and write.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The config as a JSON object (HF keys of its architecture), including the extra keys it was read with.</summary>
    public JsonObject ToJson() => JsonSerializer.SerializeToNode(this, GetType(), JsonOptions)!.AsObject();

    /// <summary>Writes config.json.</summary>
    public void Save(string path) => File.WriteAllText(path, ToJson().ToJsonString(JsonOptions));
}
