using SharpTune.Heads;
using SharpTune.Models;
using TorchSharp.Modules;

namespace SharpTune.Strategies;

/// <summary>One named parameter of a task model, with the group it belongs to.</summary>
/// <param name="Key">Its checkpoint key (bert.encoder.layer.0.attention.self.query.weight, roberta.…, distilbert.transformer.layer.0.…).</param>
/// <param name="Parameter">The parameter itself.</param>
/// <param name="Group">embeddings, layer 0 … layer N-1, pooler, head, or adapters.</param>
/// <param name="Depth">Distance from the bottom: embeddings 0, layer i → i + 1, pooler N + 1, head N + 2 (adapters: their layer's).</param>
/// <param name="Layer">The transformer layer index, or null outside the layers.</param>
public sealed record ParameterEntry(string Key, Parameter Parameter, string Group, int Depth, int? Layer)
{
    /// <summary>A LoRA adapter tensor.</summary>
    public bool IsAdapter => Group == ParameterGroups.Adapters;
    /// <summary>A bias term (BitFit trains these), LayerNorm biases included.</summary>
    public bool IsBias => Key.EndsWith(".bias", StringComparison.Ordinal);
    /// <summary>A tensor of the encoder (not the head).</summary>
    public bool IsBackbone => Group != ParameterGroups.Head;
    /// <summary>Weight decay applies to matrices only: never to biases, LayerNorms or 1-d tensors.</summary>
    public bool DecaysWeight => Parameter.dim() >= 2 && !Key.Contains("LayerNorm", StringComparison.Ordinal);
}

/// <summary>
/// The ordered parameter groups of a task model, bottom to top (fastai's layer groups):
/// embeddings, layer 0 … layer N-1, pooler, head, plus adapters when LoRA is in.
/// </summary>
public static class ParameterGroups
{
    /// <summary>Group name of the embeddings.</summary>
    public const string Embeddings = "embeddings";
    /// <summary>Group name of the pooler.</summary>
    public const string Pooler = "pooler";
    /// <summary>Group name of the head.</summary>
    public const string Head = "head";
    /// <summary>Group name of the LoRA adapter tensors.</summary>
    public const string Adapters = "adapters";

    /// <summary>Group name of transformer layer <paramref name="index"/>.</summary>
    public static string Layer(int index) => $"layer {index}";

    /// <summary>Every parameter of the model with its group, in module order; the architecture says which keys are which.</summary>
    public static IReadOnlyList<ParameterEntry> Of(SequenceClassifier model)
    {
        int layers = model.Encoder.Config.NumHiddenLayers;
        string prefix = model.EncoderPrefix;
        KeyGroups groups = model.Encoder.Architecture.Groups;
        var entries = new List<ParameterEntry>();
        foreach (var (key, parameter) in model.named_parameters())
        {
            var (group, depth, layer) = key.StartsWith(prefix, StringComparison.Ordinal)
                ? Classify(groups, key[prefix.Length..], layers, key)
                : (Head, layers + 2, (int?)null);
            if (key.Contains(".lora_", StringComparison.Ordinal)) group = Adapters;
            entries.Add(new ParameterEntry(key, parameter, group, depth, layer));
        }
        return entries;
    }

    /// <summary>The group names in display order for a model with <paramref name="layers"/> layers.</summary>
    public static IEnumerable<string> Order(int layers) =>
        new[] { Embeddings }.Concat(Enumerable.Range(0, layers).Select(Layer)).Concat([Pooler, Head, Adapters]);

    /// <summary>True when the head reads the pooler's output (otherwise the pooler gets no gradient and is frozen).</summary>
    public static bool PoolerUsed(SequenceClassifier model) => model.Head.Input == HeadInput.Pooled;

    /// <summary>The group, depth and layer of an encoder key (without the prefix); <paramref name="key"/> names it in errors.</summary>
    public static (string Group, int Depth, int? Layer) Classify(KeyGroups groups, string encoderKey, int layers, string? key = null)
    {
        key ??= encoderKey;
        if (groups.Embeddings.Any(p => encoderKey.StartsWith(p, StringComparison.Ordinal))) return (Embeddings, 0, null);
        if (groups.Pooler is { } pooler && encoderKey.StartsWith(pooler, StringComparison.Ordinal)) return (Pooler, layers + 1, null);
        if (encoderKey.StartsWith(groups.Layers, StringComparison.Ordinal))
        {
            string rest = encoderKey[groups.Layers.Length..];
            int dot = rest.IndexOf('.');
            if (dot > 0 && int.TryParse(rest[..dot], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int layer))
                return (Layer(layer), layer + 1, layer);
        }
        throw new SharpTuneException($"Parameter '{key}' belongs to no known group (embeddings {string.Join(", ", groups.Embeddings)}; layers {groups.Layers}N; pooler {groups.Pooler ?? "none"}).");
    }
}
