using System.Text.Json.Nodes;

namespace SharpTune.Heads;

/// <summary>
/// Maps a head's type name (as saved in sharptune.json) to a factory, so a saved run loads back without
/// code in the checkpoint. Built-in heads are registered; register your own custom head once at start-up.
/// </summary>
public static class HeadRegistry
{
    /// <summary>Builds a head from the hidden size, the number of outputs and the saved options.</summary>
    public delegate Head Factory(int hiddenSize, int outputs, JsonObject options);

    private static readonly Dictionary<string, Factory> Factories = new(StringComparer.Ordinal)
    {
        [nameof(ClassificationHead)] = (h, o, opt) => new ClassificationHead(h, o, Dropout(opt), opt["activation"]?.GetValue<string>() ?? "tanh"),
        [nameof(PooledHead)] = (h, o, opt) => new PooledHead(h, o, Dropout(opt)),
        [nameof(MeanPoolingHead)] = (h, o, opt) => new MeanPoolingHead(h, o, Dropout(opt)),
        [nameof(TokenClassificationHead)] = (h, o, opt) => new TokenClassificationHead(h, o, Dropout(opt)),
        [nameof(ContextPoolerHead)] = (h, o, opt) => new ContextPoolerHead(h, o, Dropout(opt), opt["pooler_dropout"]?.GetValue<double>() ?? 0, opt["pooler_hidden_act"]?.GetValue<string>() ?? "gelu", opt["pooler_hidden_size"]?.GetValue<int>()),
        [nameof(PreClassifierHead)] = (h, o, opt) => new PreClassifierHead(h, o, Dropout(opt)),
    };

    /// <summary>The CLI's short names: cls, pooled, mean, token.</summary>
    public static readonly IReadOnlyDictionary<string, string> ShortNames = new Dictionary<string, string>
    {
        ["cls"] = nameof(ClassificationHead), ["pooled"] = nameof(PooledHead), ["mean"] = nameof(MeanPoolingHead), ["token"] = nameof(TokenClassificationHead),
    };

    /// <summary>The name of "the architecture's own Hugging Face head" (see <see cref="Models.Architecture.SequenceHead"/>).</summary>
    public const string ArchitectureHead = "hf";

    /// <summary>Registers (or replaces) a head type.</summary>
    public static void Register(string typeName, Factory factory)
    {
        lock (Factories) Factories[typeName] = factory;
    }

    /// <summary>
    /// Builds a head for <paramref name="encoder"/>: <see cref="ArchitectureHead"/> ("hf") is its architecture's own HF head for
    /// <paramref name="task"/> (default: sequence classification), any other name as below.
    /// </summary>
    public static Head Create(string typeName, Models.Encoder encoder, int outputs, Training.TaskType? task = null) => typeName == ArchitectureHead
        ? (task ?? Training.TaskType.SingleLabel).HuggingFaceHead(encoder, outputs)
        : Create(typeName, encoder.Config.HiddenSize, outputs);

    /// <summary>Builds a head by type name or CLI short name (cls, pooled, mean).</summary>
    public static Head Create(string typeName, int hiddenSize, int outputs, JsonObject? options = null)
    {
        string name = ShortNames.TryGetValue(typeName, out var full) ? full : typeName;
        Factory? factory;
        lock (Factories) Factories.TryGetValue(name, out factory);
        if (factory is null)
        {
            string known;
            lock (Factories) known = string.Join(", ", ShortNames.Keys.Append(ArchitectureHead).Concat(Factories.Keys));
            throw new SharpTuneException($"Unknown head '{typeName}'; known: {known}. Register a custom head with HeadRegistry.Register.");
        }
        return factory(hiddenSize, outputs, options ?? new JsonObject());
    }

    private static double Dropout(JsonObject options) => options["dropout"]?.GetValue<double>() ?? 0.1;
}
