using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Heads;

namespace SharpTune.Models;

/// <summary>
/// How an architecture's parameter keys (without its prefix) split into the ordered groups strategies work on:
/// embeddings, layer 0 … N-1, pooler. Everything outside the encoder is the head.
/// </summary>
/// <param name="Embeddings">Key prefixes of the embeddings group (for DeBERTa also the shared relative embeddings).</param>
/// <param name="Layers">Key prefix of the numbered layers, e.g. <c>encoder.layer.</c>; the layer index follows it.</param>
/// <param name="Pooler">Key prefix of the pooler, or null when the encoder has none.</param>
public sealed record KeyGroups(IReadOnlyList<string> Embeddings, string Layers, string? Pooler);

/// <summary>
/// What SharpTune knows about one encoder architecture, as Hugging Face's <c>AutoModel</c> mapping and
/// <c>base_model_prefix</c> and PEFT's per-model target table say it. Each model file declares its own; one line in
/// <see cref="Architectures"/> registers it.
/// </summary>
public sealed record Architecture
{
    /// <summary>config.json's <c>model_type</c>.</summary>
    public required string ModelType { get; init; }
    /// <summary>The checkpoint prefix of the encoder inside a task model (<c>base_model_prefix</c>): bert, roberta, distilbert, electra, deberta.</summary>
    public required string Prefix { get; init; }
    /// <summary>The config record read from config.json.</summary>
    public required Type ConfigType { get; init; }
    /// <summary>Builds a randomly initialised encoder; the flag asks for a pooler (ignored by architectures without one).</summary>
    public required Func<EncoderConfig, bool, Encoder> Create { get; init; }
    /// <summary>How the encoder's keys group.</summary>
    public required KeyGroups Groups { get; init; }
    /// <summary>Default LoRA targets (key suffixes of Linear layers), as PEFT's table has them.</summary>
    public required IReadOnlyList<string> LoraTargets { get; init; }
    /// <summary>Every Linear layer LoRA may target, for messages.</summary>
    public required IReadOnlyList<string> LinearLayers { get; init; }
    /// <summary>HF class of the bare encoder (<c>BertModel</c>).</summary>
    public required string BaseClass { get; init; }
    /// <summary>HF sequence-classification class (<c>BertForSequenceClassification</c>).</summary>
    public required string SequenceClassificationClass { get; init; }
    /// <summary>HF token-classification class (<c>BertForTokenClassification</c>).</summary>
    public required string TokenClassificationClass { get; init; }
    /// <summary>The head of <see cref="SequenceClassificationClass"/> for (config, outputs): what a Python-saved task checkpoint loads into.</summary>
    public required Func<EncoderConfig, int, Head> SequenceHead { get; init; }
    /// <summary>
    /// The head of <see cref="TokenClassificationClass"/> for (config, outputs): dropout → classifier on every token, the
    /// same layout in every supported architecture; the dropout as HF's class reads it (classifier_dropout, else
    /// hidden_dropout_prob; DistilBERT and DeBERTa override it).
    /// </summary>
    public Func<EncoderConfig, int, Head> TokenHead { get; init; } = (config, outputs) => new TokenClassificationHead(config.HiddenSize, outputs, config.ClassifierDropout);
    /// <summary>The config.json key HF's <see cref="SequenceClassificationClass"/> reads its head's dropout from (BERT, RoBERTa, ELECTRA: classifier_dropout).</summary>
    public string SequenceDropoutKey { get; init; } = "classifier_dropout";
    /// <summary>
    /// The config.json key HF's <see cref="TokenClassificationClass"/> reads its head's dropout from, or null when that
    /// class takes the encoder's own dropout (DistilBERT's <c>dropout</c>, DeBERTa's <c>hidden_dropout_prob</c>), which no
    /// key sets for the head alone.
    /// </summary>
    public string? TokenDropoutKey { get; init; } = "classifier_dropout";
    /// <summary>Checkpoint keys of the bare encoder that are constants, not parameters (e.g. <c>embeddings.position_ids</c>): never missing, never unexpected.</summary>
    public IReadOnlyList<string> IgnoredKeys { get; init; } = ["embeddings.position_ids"];
    /// <summary>Old key endings and their current names (TF-era <c>LayerNorm.gamma</c>).</summary>
    public IReadOnlyList<(string Old, string New)> KeyRenames { get; init; } = [("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias")];

    /// <summary>
    /// True when checkpoint <paramref name="keys"/> hold a pooler (RoBERTa's task checkpoints, for one, do not); the keys
    /// carry <paramref name="prefix"/> (<see cref="KeyPrefix"/> in a task checkpoint, nothing in a bare encoder's).
    /// </summary>
    public bool HasPoolerIn(IEnumerable<string> keys, string prefix = "") =>
        Groups.Pooler is { } pooler && keys.Any(k => k.StartsWith(prefix + pooler, StringComparison.Ordinal));

    /// <summary>The prefix with its dot, as task-model keys start (<c>bert.</c>).</summary>
    public string KeyPrefix => Prefix + ".";

    /// <summary>
    /// The HF task class whose head <paramref name="head"/> is — <see cref="SequenceClassificationClass"/> or
    /// <see cref="TokenClassificationClass"/> when it has the type and options (dropout aside) of
    /// <see cref="SequenceHead"/> or <see cref="TokenHead"/> for <paramref name="config"/> — so that Python's
    /// <c>transformers</c> rebuilds exactly this computation from the saved files; null for any other head.
    /// </summary>
    public string? HuggingFaceClassOf(EncoderConfig config, Head head)
    {
        static JsonObject Shape(Head h)
        {
            var options = h.Options();
            options.Remove("dropout"); // dropout does not change what the trained model computes
            return options;
        }
        return KeepingRandomState(() =>
        {
            bool Same(Head reference)
            {
                using (reference) return reference.GetType() == head.GetType() && JsonNode.DeepEquals(Shape(reference), Shape(head));
            }
            if (Same(SequenceHead(config, head.Outputs))) return SequenceClassificationClass;
            if (Same(TokenHead(config, head.Outputs))) return TokenClassificationClass;
            return null;
        });
    }

    /// <summary>
    /// The config.json entry that makes HF's task class build <paramref name="head"/> with its dropout, so that training on
    /// in Python uses the same head: (key, dropout) when the head has an HF class (<see cref="HuggingFaceClassOf"/>) and its
    /// dropout differs from the one <paramref name="config"/> gives that class; null when they agree, when the head has
    /// no HF class, or when the class takes the encoder's own dropout (<see cref="TokenDropoutKey"/> null).
    /// </summary>
    public (string Key, double Dropout)? HeadDropoutEntry(EncoderConfig config, Head head)
    {
        string? hfClass = HuggingFaceClassOf(config, head);
        if (hfClass is null || head.Options()["dropout"] is not JsonValue value || !value.TryGetValue(out double dropout)) return null;
        bool token = hfClass == TokenClassificationClass;
        double hfDropout = KeepingRandomState(() =>
        {
            using Head reference = token ? TokenHead(config, head.Outputs) : SequenceHead(config, head.Outputs);
            return reference.Options()["dropout"]!.GetValue<double>();
        });
        string? key = token ? TokenDropoutKey : SequenceDropoutKey;
        return dropout == hfDropout || key is null ? null : (key, dropout);
    }

    // Building reference heads draws their random weights: keep the generator where it was, so that asking does not
    // change what a seeded run initialises next.
    private static T KeepingRandomState<T>(Func<T> build)
    {
        using var state = TorchSharp.torch.random.get_rng_state();
        try
        {
            return build();
        }
        finally
        {
            TorchSharp.torch.random.set_rng_state(state);
        }
    }
}

/// <summary>
/// The registry of supported architectures, keyed by config.json's <c>model_type</c>: it reads the right config
/// record and builds the right encoder. A new architecture is one model file and one line here.
/// </summary>
public static class Architectures
{
    private static readonly Dictionary<string, Architecture> ByModelType = new[]
    {
        BertModel.Registration,
        RobertaModel.Registration,
        RobertaModel.XlmRobertaRegistration,
        DebertaV2Model.Registration,
        DistilBertModel.Registration,
        ElectraModel.Registration,
    }.ToDictionary(a => a.ModelType, StringComparer.Ordinal);

    /// <summary>Every supported architecture.</summary>
    public static IReadOnlyCollection<Architecture> All => ByModelType.Values;

    /// <summary>The architecture of <paramref name="modelType"/>; an unknown type is an error naming the supported ones.</summary>
    public static Architecture For(string modelType, string source = "config.json") =>
        ByModelType.TryGetValue(modelType, out var architecture) ? architecture
            : throw new SharpTuneException($"{source}: model_type '{modelType}' is not supported; supported: {string.Join(", ", ByModelType.Keys)}.");

    /// <summary>The architecture of a config.</summary>
    public static Architecture Of(EncoderConfig config) => For(config.ModelType);

    /// <summary>The architecture whose HF class (base, sequence or token classification) is <paramref name="className"/>, or null.</summary>
    public static Architecture? ForClass(string className) => ByModelType.Values.FirstOrDefault(a =>
        a.BaseClass == className || a.SequenceClassificationClass == className || a.TokenClassificationClass == className);

    /// <summary>
    /// Reads and validates a config.json: <c>model_type</c> picks the record (a file without one is read as BERT, as
    /// old BERT exports are); errors name the file and the field.
    /// </summary>
    public static EncoderConfig LoadConfig(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: file not found (a model directory needs config.json).");
        string text = File.ReadAllText(path);
        try
        {
            StrictJson.CheckEscapes(text);
            using var document = JsonDocument.Parse(text);
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw new SharpTuneException($"{path}: expected a JSON object.");
            string modelType = document.RootElement.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String
                ? type.GetString()! : "bert";
            var architecture = For(modelType, path);
            var config = (EncoderConfig?)JsonSerializer.Deserialize(text, architecture.ConfigType, EncoderConfig.JsonOptions)
                ?? throw new SharpTuneException($"{path}: expected a JSON object, got null.");
            return config.Validate(path);
        }
        catch (JsonException e)
        {
            string where = e.Path is null ? "" : $" at {e.Path}";
            throw new SharpTuneException($"{path}: malformed JSON{where} (line {e.LineNumber + 1}): {e.Message}", e);
        }
    }
}
