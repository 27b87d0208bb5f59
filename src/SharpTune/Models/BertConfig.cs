using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace SharpTune.Models;

/// <summary>
/// The architecture of a BERT-family encoder, read from a Hugging Face <c>config.json</c>
/// (snake_case keys). Defaults are those of <c>bert-base-uncased</c>, as in <c>transformers.BertConfig</c>.
/// </summary>
public sealed record BertConfig
{
    /// <summary>HF model type: bert, roberta, xlm-roberta, distilbert, electra…</summary>
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "bert";
    /// <summary>Number of rows of the word-embedding matrix.</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 30522;
    /// <summary>Width of every hidden state.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 768;
    /// <summary>Number of transformer layers.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    /// <summary>Attention heads per layer; must divide <see cref="HiddenSize"/>.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;
    /// <summary>Width of the feed-forward layer.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 3072;
    /// <summary>Feed-forward activation: gelu, gelu_new, gelu_pytorch_tanh, relu, silu, tanh.</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    /// <summary>Dropout on embeddings and sublayer outputs.</summary>
    [JsonPropertyName("hidden_dropout_prob")] public double HiddenDropoutProb { get; init; } = 0.1;
    /// <summary>Dropout on attention probabilities.</summary>
    [JsonPropertyName("attention_probs_dropout_prob")] public double AttentionProbsDropoutProb { get; init; } = 0.1;
    /// <summary>Number of learned position embeddings (the longest input).</summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 512;
    /// <summary>Number of token types (segments).</summary>
    [JsonPropertyName("type_vocab_size")] public int TypeVocabSize { get; init; } = 2;
    /// <summary>Epsilon of every LayerNorm.</summary>
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-12;
    /// <summary>Id of the padding token.</summary>
    [JsonPropertyName("pad_token_id")] public int PadTokenId { get; init; }
    /// <summary>Standard deviation of the weight initialisation of new modules.</summary>
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;

    /// <summary>Keys of config.json that this record does not model, kept so that saving loses nothing.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    private static readonly string[] Activations = ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh"];

    /// <summary>Width of one attention head.</summary>
    [JsonIgnore] public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>Throws a <see cref="SharpTuneException"/> naming the first bad field.</summary>
    public BertConfig Validate(string source = "config.json")
    {
        void Positive(string field, long value)
        {
            if (value <= 0) throw new SharpTuneException($"{source}: {field} must be positive, got {value}.");
        }
        void Probability(string field, double value)
        {
            if (value < 0 || value >= 1 || double.IsNaN(value))
                throw new SharpTuneException($"{source}: {field} must be in [0, 1), got {value}.");
        }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("intermediate_size", IntermediateSize);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        Positive("type_vocab_size", TypeVocabSize);
        if (HiddenSize % NumAttentionHeads != 0)
            throw new SharpTuneException($"{source}: hidden_size ({HiddenSize}) must be a multiple of num_attention_heads ({NumAttentionHeads}).");
        if (!Activations.Contains(HiddenAct))
            throw new SharpTuneException($"{source}: hidden_act '{HiddenAct}' is not supported; allowed: {string.Join(", ", Activations)}.");
        Probability("hidden_dropout_prob", HiddenDropoutProb);
        Probability("attention_probs_dropout_prob", AttentionProbsDropoutProb);
        if (LayerNormEps <= 0 || double.IsNaN(LayerNormEps))
            throw new SharpTuneException($"{source}: layer_norm_eps must be positive, got {LayerNormEps}.");
        if (PadTokenId < 0 || PadTokenId >= VocabSize)
            throw new SharpTuneException($"{source}: pad_token_id ({PadTokenId}) must be in [0, vocab_size={VocabSize}).");
        return this;
    }

    /// <summary>Options shared by every config.json read and write.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads and validates a config.json; errors name the file and the field.</summary>
    public static BertConfig Load(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: file not found (a model directory needs config.json).");
        BertConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<BertConfig>(File.ReadAllText(path), JsonOptions);
        }
        catch (JsonException e)
        {
            string where = e.Path is null ? "" : $" at {e.Path}";
            throw new SharpTuneException($"{path}: malformed JSON{where} (line {e.LineNumber + 1}): {e.Message}", e);
        }
        if (config is null) throw new SharpTuneException($"{path}: expected a JSON object, got null.");
        return config.Validate(path);
    }

    /// <summary>The config as a JSON object (HF keys), including the extra keys it was read with.</summary>
    public JsonObject ToJson() => JsonSerializer.SerializeToNode(this, JsonOptions)!.AsObject();

    /// <summary>Writes config.json.</summary>
    public void Save(string path) => File.WriteAllText(path, ToJson().ToJsonString(JsonOptions));
}
