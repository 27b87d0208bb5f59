using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Strategies;

/// <summary>The audit's verdict on one tensor.</summary>
/// <param name="Key">Checkpoint key.</param>
/// <param name="Group">Parameter group.</param>
/// <param name="Trainable">Whether the strategy let it train at any epoch.</param>
/// <param name="Changed">Whether its bytes differ from the start.</param>
/// <param name="MaxAbsChange">Largest absolute change of an element.</param>
public sealed record AuditEntry(string Key, string Group, bool Trainable, bool Changed, double MaxAbsChange)
{
    /// <summary>Frozen and unchanged, or trainable and changed.</summary>
    public bool AsExpected => Trainable == Changed;
}

/// <summary>
/// Proof of what trained: a snapshot of every tensor before training, compared after it. Every frozen tensor
/// must be bit-identical to its start, every trainable one must have changed.
/// </summary>
public sealed class FreezeAudit : IDisposable
{
    private readonly Dictionary<string, Tensor> start;

    private FreezeAudit(Dictionary<string, Tensor> start) => this.start = start;

    /// <summary>Copies every parameter (on the CPU) before training.</summary>
    public static FreezeAudit Snapshot(SequenceClassifier model)
    {
        var copies = new Dictionary<string, Tensor>();
        using (no_grad())
            foreach (var (key, parameter) in model.named_parameters())
                copies[key] = parameter.detach().cpu().contiguous().clone();
        return new FreezeAudit(copies);
    }

    /// <summary>Puts the snapshot's values back into the parameters named in <paramref name="keys"/>.</summary>
    public void Restore(SequenceClassifier model, IEnumerable<string> keys)
    {
        var wanted = keys.ToHashSet(StringComparer.Ordinal);
        using (no_grad())
            foreach (var (key, parameter) in model.named_parameters())
                if (wanted.Contains(key)) parameter.copy_(start[key]);
    }

    /// <summary>Compares the model with the snapshot; <paramref name="trainableKeys"/> are the keys that trained at any epoch.</summary>
    public AuditReport Compare(SequenceClassifier model, IReadOnlySet<string> trainableKeys)
    {
        var groups = ParameterGroups.Of(model).ToDictionary(e => e.Key, e => e.Group);
        var entries = new List<AuditEntry>();
        using (no_grad())
            foreach (var (key, parameter) in model.named_parameters())
            {
                using var scope = NewDisposeScope();
                if (!start.TryGetValue(key, out var before))
                    throw new SharpTuneException($"Freeze audit: parameter '{key}' did not exist when the snapshot was taken.");
                var now = parameter.detach().cpu().contiguous();
                bool changed = !now.bytes.SequenceEqual(before.bytes); // bit-identical, not approximately equal
                double maxChange = changed ? (now.to_type(ScalarType.Float64) - before.to_type(ScalarType.Float64)).abs().max().item<double>() : 0;
                entries.Add(new AuditEntry(key, groups[key], trainableKeys.Contains(key), changed, maxChange));
            }
        return new AuditReport(entries);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in start.Values) t.Dispose();
        start.Clear();
    }
}

/// <summary>The freeze audit's result: per tensor, summed per group.</summary>
public sealed record AuditReport(IReadOnlyList<AuditEntry> Entries)
{
    /// <summary>Frozen tensors that changed, or trainable ones that did not.</summary>
    public IReadOnlyList<AuditEntry> Violations => Entries.Where(e => !e.AsExpected).ToList();
    /// <summary>True when every tensor is as the strategy said.</summary>
    public bool Passed => Violations.Count == 0;
    /// <summary>Backbone tensors that changed.</summary>
    public int BackboneChanged => Entries.Count(e => e.Group != ParameterGroups.Head && e.Changed);
    /// <summary>Head tensors that changed.</summary>
    public int HeadChanged => Entries.Count(e => e.Group == ParameterGroups.Head && e.Changed);
    /// <summary>Head tensors.</summary>
    public int HeadTensors => Entries.Count(e => e.Group == ParameterGroups.Head);

    /// <summary>One line per group: frozen unchanged / frozen, trainable changed / trainable.</summary>
    public IEnumerable<(string Group, int Frozen, int FrozenUnchanged, int Trainable, int TrainableChanged)> Groups() =>
        Entries.GroupBy(e => e.Group).Select(g => (g.Key,
            g.Count(e => !e.Trainable), g.Count(e => !e.Trainable && !e.Changed),
            g.Count(e => e.Trainable), g.Count(e => e.Trainable && e.Changed)));

    /// <summary>A one-line verdict.</summary>
    public string Summary => Passed
        ? $"PASSED: {Entries.Count(e => !e.Trainable)} frozen tensors bit-identical to their start, {Entries.Count(e => e.Trainable)} trainable tensors all changed."
        : $"FAILED: {Violations.Count} tensor(s) not as the strategy said: " +
          string.Join(", ", Violations.Take(10).Select(v => $"{v.Key} ({(v.Trainable ? "trainable but unchanged" : "frozen but changed")})"));

    /// <summary>The audit as Markdown (audit.md).</summary>
    public string ToMarkdown()
    {
        var text = new StringBuilder();
        text.AppendLine("# Freeze audit").AppendLine().AppendLine(Summary).AppendLine();
        text.AppendLine("| group | frozen tensors | unchanged | trainable tensors | changed |");
        text.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var g in Groups())
            text.AppendLine(CultureInfo.InvariantCulture, $"| {g.Group} | {g.Frozen} | {g.FrozenUnchanged} | {g.Trainable} | {g.TrainableChanged} |");
        if (!Passed)
        {
            text.AppendLine().AppendLine("## Violations").AppendLine();
            foreach (var v in Violations)
                text.AppendLine(CultureInfo.InvariantCulture, $"- {v.Key}: {(v.Trainable ? "trainable but unchanged" : $"frozen but changed (max |Δ| = {v.MaxAbsChange:G3})")}");
        }
        return text.ToString();
    }

    /// <summary>The audit as JSON (audit.json), every tensor listed.</summary>
    public JsonObject ToJson() => new()
    {
        ["passed"] = Passed,
        ["summary"] = Summary,
        ["tensors"] = new JsonArray(Entries.Select(e => (JsonNode)new JsonObject
        {
            ["key"] = e.Key, ["group"] = e.Group, ["trainable"] = e.Trainable, ["changed"] = e.Changed,
            ["max_abs_change"] = e.MaxAbsChange,
        }).ToArray()),
    };
}
