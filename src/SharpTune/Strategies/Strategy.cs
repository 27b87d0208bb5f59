using System.Globalization;
using SharpTune.Lora;
using SharpTune.Models;

namespace SharpTune.Strategies;

/// <summary>
/// Says what trains. Fixed order: load weights → <see cref="Prepare"/> (structural changes such as LoRA
/// adapters) → StrategyApplier.Apply (requires_grad on every tensor, train/eval modes) →
/// build the optimizer over the trainable tensors only. Nothing else touches requires_grad.
/// </summary>
public abstract record Strategy
{
    /// <summary>The name as the CLI spells it (frozen, full, top:2, bitfit, lora:r=8, gradual).</summary>
    public abstract string Name { get; }

    /// <summary>One line for the docs and the parameter table.</summary>
    public abstract string Description { get; }

    /// <summary>
    /// A sensible base learning rate for this strategy when the user gives none: small for the whole
    /// transformer, larger the fewer tensors train (a lone head on frozen features needs a large one).
    /// </summary>
    public abstract double DefaultLearningRate { get; }

    /// <summary>Structural changes before training (default: none).</summary>
    public virtual void Prepare(SequenceClassifier model) { }

    /// <summary>Whether <paramref name="parameter"/> trains in epoch <paramref name="epoch"/> (0-based) of a model with <paramref name="layers"/> layers.</summary>
    public abstract bool Trains(ParameterEntry parameter, int epoch, int layers);

    /// <summary>Parses the CLI form: frozen | full | top:K | bitfit | lora[:r=8,alpha=16,dropout=0.1,targets=query+value] | gradual.</summary>
    public static Strategy Parse(string text)
    {
        string trimmed = text.Trim();
        string kind = trimmed.Split(':', 2)[0].ToLowerInvariant();
        string? argument = trimmed.Contains(':') ? trimmed.Split(':', 2)[1] : null;
        switch (kind)
        {
            case "full": return new FullStrategy();
            case "frozen": return new FrozenStrategy();
            case "bitfit": return new BitFitStrategy();
            case "gradual": return new GradualUnfreezingStrategy();
            case "top":
                if (argument is null || !int.TryParse(argument, NumberStyles.None, CultureInfo.InvariantCulture, out int k) || k <= 0)
                    throw new SharpTuneException($"strategy '{text}': top needs a positive layer count, e.g. top:2.");
                return new TopLayersStrategy(k);
            case "lora":
                return new LoraStrategy(ParseLora(text, argument));
            default:
                throw new SharpTuneException($"Unknown strategy '{text}'; allowed: frozen, full, top:K, bitfit, lora[:r=8,alpha=16,dropout=0.1,targets=query+value], gradual.");
        }
    }

    private static LoraOptions ParseLora(string text, string? argument)
    {
        var options = new LoraOptions();
        if (string.IsNullOrWhiteSpace(argument)) return options;
        foreach (string part in argument.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length != 2) throw new SharpTuneException($"strategy '{text}': '{part}' is not key=value.");
            double Number() => double.TryParse(kv[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double v)
                ? v : throw new SharpTuneException($"strategy '{text}': {kv[0]} must be a number, got '{kv[1]}'.");
            options = kv[0].ToLowerInvariant() switch
            {
                "r" or "rank" => options with { Rank = (int)Number() },
                "alpha" => options with { Alpha = Number() },
                "dropout" => options with { Dropout = Number() },
                "targets" or "target_modules" => options with { TargetModules = kv[1].Split('+', StringSplitOptions.RemoveEmptyEntries) },
                _ => throw new SharpTuneException($"strategy '{text}': unknown LoRA option '{kv[0]}'; allowed: r, alpha, dropout, targets."),
            };
        }
        return options.Validate();
    }
}

/// <summary>Everything trains: the transformer together with the head.</summary>
public sealed record FullStrategy : Strategy
{
    /// <inheritdoc />
    public override double DefaultLearningRate => 1e-4;
    /// <inheritdoc />
    public override string Name => "full";
    /// <inheritdoc />
    public override string Description => "Fine-tunes the whole transformer together with the head.";
    /// <inheritdoc />
    public override bool Trains(ParameterEntry parameter, int epoch, int layers) => true;
}

/// <summary>Feature extraction: the backbone is frozen (and in eval mode: no dropout); only the head trains.</summary>
public sealed record FrozenStrategy : Strategy
{
    /// <inheritdoc />
    public override double DefaultLearningRate => 1e-2;
    /// <inheritdoc />
    public override string Name => "frozen";
    /// <inheritdoc />
    public override string Description => "Freezes the transformer (eval mode, features computed once); trains only the head.";
    /// <inheritdoc />
    public override bool Trains(ParameterEntry parameter, int epoch, int layers) => !parameter.IsBackbone;
}

/// <summary>The top <see cref="Layers"/> transformer layers, the pooler and the head train; embeddings and lower layers are frozen.</summary>
public sealed record TopLayersStrategy(int Layers) : Strategy
{
    /// <inheritdoc />
    public override double DefaultLearningRate => 1e-4;
    /// <inheritdoc />
    public override string Name => $"top:{Layers}";
    /// <inheritdoc />
    public override string Description => $"Trains the top {Layers} layer(s), the pooler and the head; embeddings and lower layers stay frozen.";
    /// <inheritdoc />
    public override bool Trains(ParameterEntry parameter, int epoch, int layers)
    {
        if (Layers > layers) throw new SharpTuneException($"strategy top:{Layers}: the model has only {layers} layers.");
        return parameter.Group switch
        {
            ParameterGroups.Embeddings => false,
            ParameterGroups.Pooler or ParameterGroups.Head => true,
            _ => parameter.Layer >= layers - Layers,
        };
    }
}

/// <summary>BitFit: only the bias terms of the transformer (LayerNorm biases included) and the head train.</summary>
public sealed record BitFitStrategy : Strategy
{
    /// <inheritdoc />
    public override double DefaultLearningRate => 1e-3;
    /// <inheritdoc />
    public override string Name => "bitfit";
    /// <inheritdoc />
    public override string Description => "Trains only bias terms of the transformer, plus the head.";
    /// <inheritdoc />
    public override bool Trains(ParameterEntry parameter, int epoch, int layers) => !parameter.IsBackbone || parameter.IsBias;
}

/// <summary>LoRA: low-rank adapters on the target Linear layers and the head train; the base weights are frozen.</summary>
public sealed record LoraStrategy(LoraOptions Options) : Strategy
{
    /// <inheritdoc />
    public override double DefaultLearningRate => 5e-4;
    /// <inheritdoc />
    public override string Name => $"lora:r={Options.Rank},alpha={Options.Alpha.ToString(CultureInfo.InvariantCulture)}";
    /// <inheritdoc />
    public override string Description => $"Adds rank-{Options.Rank} adapters to [{(Options.TargetModules is { Count: > 0 } targets ? string.Join(", ", targets) : "the architecture's default targets")}]; trains adapters and head; merged into the weights on save.";
    /// <inheritdoc />
    public override void Prepare(SequenceClassifier model)
    {
        if (!LoraInjector.HasAdapters(model)) LoraInjector.Inject(model.Encoder, Options);
    }
    /// <inheritdoc />
    public override bool Trains(ParameterEntry parameter, int epoch, int layers) => parameter.IsAdapter || !parameter.IsBackbone;
}

/// <summary>
/// ULMFiT gradual unfreezing: epoch 0 trains the head (and pooler), each later epoch unfreezes one more
/// layer from the top; after every layer, the embeddings.
/// </summary>
public sealed record GradualUnfreezingStrategy : Strategy
{
    /// <inheritdoc />
    public override double DefaultLearningRate => 1e-4;
    /// <inheritdoc />
    public override string Name => "gradual";
    /// <inheritdoc />
    public override string Description => "Starts frozen; unfreezes one more layer group from the top each epoch (ULMFiT).";
    /// <inheritdoc />
    public override bool Trains(ParameterEntry parameter, int epoch, int layers) => parameter.Group switch
    {
        ParameterGroups.Head or ParameterGroups.Pooler => true,
        ParameterGroups.Embeddings => epoch > layers,
        _ => parameter.Layer >= layers - epoch,
    };
}
