using System.Text.Json;
using System.Text.Json.Serialization;

namespace SharpTune.Models;

/// <summary>
/// The architecture of a BERT encoder, read from a Hugging Face <c>config.json</c> (snake_case keys). Defaults are
/// those of <c>bert-base-uncased</c>, as in <c>transformers.BertConfig</c>. RoBERTa, XLM-RoBERTa and ELECTRA are BERT
/// with other embeddings: their records derive from this one and change only defaults (and ELECTRA's embedding size).
/// </summary>
public record BertConfig : EncoderConfig
{
    /// <summary>Creates a config with BERT's defaults.</summary>
    public BertConfig() => ModelType = "bert";

    /// <summary>Width of every hidden state.</summary>
    [JsonPropertyName("hidden_size")] public override int HiddenSize { get; init; } = 768;
    /// <summary>Number of transformer layers.</summary>
    [JsonPropertyName("num_hidden_layers")] public override int NumHiddenLayers { get; init; } = 12;
    /// <summary>Attention heads per layer; must divide <see cref="HiddenSize"/>.</summary>
    [JsonPropertyName("num_attention_heads")] public override int NumAttentionHeads { get; init; } = 12;
    /// <summary>Width of the feed-forward layer.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 3072;
    /// <summary>Feed-forward activation: gelu, gelu_new, gelu_pytorch_tanh, relu, silu, tanh.</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    /// <summary>Dropout on embeddings and sublayer outputs.</summary>
    [JsonPropertyName("hidden_dropout_prob")] public double HiddenDropoutProb { get; init; } = 0.1;
    /// <summary>Dropout on attention probabilities.</summary>
    [JsonPropertyName("attention_probs_dropout_prob")] public double AttentionProbsDropoutProb { get; init; } = 0.1;
    /// <summary>Number of token types (segments).</summary>
    [JsonPropertyName("type_vocab_size")] public int TypeVocabSize { get; init; } = 2;
    /// <summary>Epsilon of every LayerNorm.</summary>
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-12;
    /// <summary>Dropout of the classification head; null: <see cref="HiddenDropoutProb"/>.</summary>
    [JsonPropertyName("classifier_dropout")] public double? ClassifierDropoutProb { get; init; }

    /// <inheritdoc />
    [JsonIgnore] public override double ClassifierDropout => ClassifierDropoutProb ?? HiddenDropoutProb;

    /// <summary>Width of one attention head.</summary>
    [JsonIgnore] public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <inheritdoc />
    public override EncoderConfig Validate(string source = "config.json")
    {
        base.Validate(source);
        Positive(source, "intermediate_size", IntermediateSize);
        Positive(source, "type_vocab_size", TypeVocabSize);
        CheckActivation(source, "hidden_act", HiddenAct);
        Probability(source, "hidden_dropout_prob", HiddenDropoutProb);
        Probability(source, "attention_probs_dropout_prob", AttentionProbsDropoutProb);
        if (ClassifierDropoutProb is { } dropout) Probability(source, "classifier_dropout", dropout);
        if (LayerNormEps <= 0 || double.IsNaN(LayerNormEps))
            throw new SharpTuneException($"{source}: layer_norm_eps must be positive, got {LayerNormEps}.");
        return this;
    }
}
