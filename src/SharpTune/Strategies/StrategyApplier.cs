using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Models;

namespace SharpTune.Strategies;

/// <summary>
/// Learning rates per group: the head may have its own rate, and layer-wise decay multiplies each layer's
/// rate by <see cref="LayerDecay"/> once per layer below the top (embeddings one step below layer 0).
/// </summary>
/// <param name="BaseRate">Rate of the top layer and the pooler (and of the head, unless <see cref="HeadRate"/>).</param>
/// <param name="HeadRate">
/// Rate of the head; null means the larger of 1e-3 and <see cref="BaseRate"/>: a new, randomly initialised head
/// learns faster than the pretrained layers under it (and alone on frozen features it is the base rate).
/// </param>
/// <param name="LayerDecay">Layer-wise decay factor in (0, 1]; 1 means one rate for the whole backbone.</param>
public sealed record LearningRates(double BaseRate = 5e-5, double? HeadRate = null, double LayerDecay = 1.0)
{
    /// <summary>The head's rate when none is given and the base rate is lower.</summary>
    public const double DefaultHeadRate = 1e-3;

    /// <summary>The head's rate: <see cref="HeadRate"/>, or the default described there.</summary>
    public double EffectiveHeadRate => HeadRate ?? Math.Max(DefaultHeadRate, BaseRate);

    /// <summary>The rate of one parameter.</summary>
    public double For(ParameterEntry entry, int layers)
    {
        if (!entry.IsBackbone) return EffectiveHeadRate;
        int stepsBelowTop = entry.Group == ParameterGroups.Pooler ? 0 : Math.Max(0, layers - entry.Depth);
        return BaseRate * Math.Pow(LayerDecay, stepsBelowTop);
    }

    /// <summary>Throws a <see cref="SharpTuneException"/> naming the bad option.</summary>
    public LearningRates Validate()
    {
        if (!(BaseRate > 0)) throw new SharpTuneException($"--lr must be positive, got {BaseRate}.");
        if (HeadRate is { } h && !(h > 0)) throw new SharpTuneException($"--head-lr must be positive, got {h}.");
        if (!(LayerDecay > 0 && LayerDecay <= 1)) throw new SharpTuneException($"--layer-lr-decay must be in (0, 1], got {LayerDecay}.");
        return this;
    }
}

/// <summary>One row of the parameter table: a group with its counts, state, learning rate and mode.</summary>
public sealed record PlanRow(string Group, int Tensors, long Parameters, long TrainableParameters, string Status, string LearningRate, string Mode);

/// <summary>What trains, group by group: the table shown before training and saved in the run directory.</summary>
public sealed record TrainingPlan(string Strategy, int Epoch, IReadOnlyList<PlanRow> Rows, IReadOnlyList<ParameterEntry> Entries, bool BackboneTrains)
{
    /// <summary>All parameters.</summary>
    public long TotalParameters => Rows.Sum(r => r.Parameters);
    /// <summary>Parameters with requires_grad.</summary>
    public long TrainableParameters => Rows.Sum(r => r.TrainableParameters);
    /// <summary>Trainable share in percent.</summary>
    public double TrainablePercent => TotalParameters == 0 ? 0 : 100.0 * TrainableParameters / TotalParameters;
    /// <summary>The trainable parameters, in module order.</summary>
    public IEnumerable<ParameterEntry> Trainable => Entries.Where(e => e.Parameter.requires_grad);

    /// <summary>The table as Markdown (parameters.md).</summary>
    public string ToMarkdown()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Strategy: {Strategy} (epoch {Epoch})").AppendLine();
        text.AppendLine("| group | tensors | parameters | trainable | status | learning rate | mode |");
        text.AppendLine("|---|---:|---:|---:|---|---:|---|");
        foreach (var r in Rows)
            text.AppendLine(CultureInfo.InvariantCulture, $"| {r.Group} | {r.Tensors} | {r.Parameters:N0} | {r.TrainableParameters:N0} | {r.Status} | {r.LearningRate} | {r.Mode} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| **total** | {Rows.Sum(r => r.Tensors)} | {TotalParameters:N0} | {TrainableParameters:N0} | {TrainablePercent:F2}% trainable | | |");
        return text.ToString();
    }

    /// <summary>The table as JSON (parameters.json).</summary>
    public JsonObject ToJson() => new()
    {
        ["strategy"] = Strategy,
        ["epoch"] = Epoch,
        ["total_parameters"] = TotalParameters,
        ["trainable_parameters"] = TrainableParameters,
        ["trainable_percent"] = Math.Round(TrainablePercent, 4),
        ["groups"] = new JsonArray(Rows.Select(r => (JsonNode)new JsonObject
        {
            ["group"] = r.Group, ["tensors"] = r.Tensors, ["parameters"] = r.Parameters,
            ["trainable_parameters"] = r.TrainableParameters, ["status"] = r.Status,
            ["learning_rate"] = r.LearningRate, ["mode"] = r.Mode,
        }).ToArray()),
    };
}

/// <summary>Applies a strategy: the one place that sets requires_grad and chooses train/eval mode per part.</summary>
public static class StrategyApplier
{
    /// <summary>
    /// Prepares the model for <paramref name="strategy"/> (first call only) and sets requires_grad on every
    /// tensor for <paramref name="epoch"/>. A pooler that the head does not read gets no gradient, so it is
    /// always frozen. Returns the parameter table.
    /// </summary>
    public static TrainingPlan Apply(SequenceClassifier model, Strategy strategy, int epoch = 0, LearningRates? rates = null)
    {
        rates = (rates ?? new LearningRates()).Validate();
        strategy.Prepare(model);
        int layers = model.Encoder.Config.NumHiddenLayers;
        bool poolerUsed = ParameterGroups.PoolerUsed(model);
        var entries = ParameterGroups.Of(model);
        string? poolerPrefix = model.Encoder.Architecture.Groups.Pooler is { } pooler ? model.EncoderPrefix + pooler : null;
        foreach (var entry in entries)
        {
            // The pooler's tensors (adapters on it included) get no gradient when the head does not read it.
            bool inPooler = poolerPrefix is not null && entry.Key.StartsWith(poolerPrefix, StringComparison.Ordinal);
            bool trains = strategy.Trains(entry, epoch, layers) && (!inPooler || poolerUsed);
            entry.Parameter.requires_grad = trains;
        }
        bool backboneTrains = entries.Any(e => e.IsBackbone && e.Parameter.requires_grad);

        var rows = new List<PlanRow>();
        foreach (string group in ParameterGroups.Order(layers))
        {
            var members = entries.Where(e => e.Group == group).ToList();
            if (members.Count == 0) continue;
            long count = members.Sum(e => e.Parameter.numel());
            long trainable = members.Where(e => e.Parameter.requires_grad).Sum(e => e.Parameter.numel());
            string status = trainable == 0 ? (group == ParameterGroups.Pooler && !poolerUsed ? "frozen (unused by head)" : "frozen")
                : trainable == count ? "trainable" : "partly (" + Describe(members) + ")";
            var rateValues = members.Where(e => e.Parameter.requires_grad).Select(e => rates.For(e, layers)).Distinct().ToList();
            string rate = rateValues.Count == 0 ? "-" : string.Join(" / ", rateValues.Select(r => r.ToString("0.###e+0", CultureInfo.InvariantCulture)));
            string mode = group == ParameterGroups.Head || backboneTrains ? "train" : "eval";
            rows.Add(new PlanRow(group, members.Count, count, trainable, status, rate, mode));
        }
        return new TrainingPlan(strategy.Name, epoch, rows, entries, backboneTrains);
    }

    /// <summary>
    /// Training mode for a step: the head trains; the backbone is in train mode only when some of its tensors
    /// train, so a frozen backbone has no dropout and gives the same features every time.
    /// </summary>
    public static void SetTrainingMode(SequenceClassifier model, TrainingPlan plan)
    {
        model.train();
        if (!plan.BackboneTrains) model.Encoder.eval();
    }

    private static string Describe(List<ParameterEntry> members)
    {
        var trained = members.Where(e => e.Parameter.requires_grad).ToList();
        return trained.All(e => e.IsBias) ? "biases" : $"{trained.Count} of {members.Count} tensors";
    }
}
