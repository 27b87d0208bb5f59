using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Models;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Fixtures;

/// <summary>
/// Compares a SharpTune task model with what transformers computed for the same checkpoint (cases.json of
/// <see cref="HfFixtures"/>): hidden states, logits, and one training step's loss and gradients. Works for every
/// architecture; a test file per architecture states the tolerances.
/// </summary>
internal static class HfParity
{
    /// <summary>The fixture's Python-saved XForSequenceClassification, loaded as SharpTune loads any such checkpoint.</summary>
    public static SequenceClassifier LoadClassifier(string architecture) => ClassifierCheckpoint.Load(HfFixtures.Directory(architecture)).Model;

    /// <summary>The case's integer field as a tensor, [1, L] for one text, [B, L] for a batch; null when absent.</summary>
    public static Tensor? Ints(JsonObject @case, string field)
    {
        if (@case[field] is not JsonArray rows) return null;
        bool batched = rows.Count > 0 && rows[0] is JsonArray;
        long[] values = batched ? rows.SelectMany(r => HfFixtures.Longs(r)).ToArray() : HfFixtures.Longs(rows);
        long batch = batched ? rows.Count : 1;
        return torch.tensor(values, batch, values.Length / batch);
    }

    /// <summary>The model's last hidden state and logits on the case's encoding (token types as the tokenizer gave them, if any).</summary>
    public static (Tensor Hidden, Tensor Logits) Run(SequenceClassifier model, JsonObject @case)
    {
        Tensor ids = Ints(@case, "input_ids")!;
        Tensor? types = Ints(@case, "token_type_ids");
        Tensor mask = Ints(@case, "attention_mask")!;
        EncoderOutput output = model.Encoder.call(ids, types, mask);
        Tensor logits = model.call(ids, types, mask);
        return (output.LastHiddenState, logits);
    }

    /// <summary>max |actual − expected| over all elements (expected in row-major order, same shape).</summary>
    public static double MaxAbsDiff(Tensor actual, JsonNode? expected)
    {
        float[] reference = HfFixtures.Floats(expected);
        Assert.Equal(reference.Length, actual.numel());
        using var scope = torch.NewDisposeScope();
        var target = torch.tensor(reference).view(actual.shape);
        return (actual.detach().to_type(ScalarType.Float32) - target).abs().max().item<float>();
    }

    /// <summary>max |actual − expected| over the rows whose attention mask is 1 (actual [B, L, H], expected alike).</summary>
    public static double MaxAbsDiffAtRealTokens(Tensor actual, JsonNode? expected, Tensor attentionMask)
    {
        using var scope = torch.NewDisposeScope();
        var target = torch.tensor(HfFixtures.Floats(expected)).view(actual.shape);
        var real = attentionMask.to_type(ScalarType.Bool).unsqueeze(-1);
        return (actual.detach() - target).abs().masked_fill(real.logical_not(), 0).max().item<float>();
    }

    /// <summary>The figures of one training step against the case <c>train_step_sequence</c>.</summary>
    public sealed record TrainStep(double LossDiff, double MaxRelativeGradNormDiff, double MaxKeyBiasGradNorm, double MaxHeadGradDiff,
        IReadOnlyList<string> MissingKeys, IReadOnlyList<string> ExtraKeys, IReadOnlyList<string> Failures);

    /// <summary>
    /// One training step as the fixture made it: the checkpoint loaded into a model built from
    /// <paramref name="dropoutFree"/> (every dropout 0), train mode, cross-entropy on the labels, backward. Gradient
    /// norms are compared relatively (<paramref name="relative"/>), attention key biases — whose true gradient is 0 —
    /// absolutely (<paramref name="keyBiasAbsolute"/>), as the fixture README asks.
    /// </summary>
    public static TrainStep RunTrainStep(string architecture, EncoderConfig dropoutFree, Func<string, bool> isKeyBias, double relative, double keyBiasAbsolute)
    {
        JsonObject @case = HfFixtures.Case(architecture, "train_step_sequence");
        Architecture arch = Architectures.Of(dropoutFree);
        using var loaded = LoadClassifier(architecture);
        using var model = new SequenceClassifier(arch.Create(dropoutFree, false), arch.SequenceHead(dropoutFree, loaded.Head.Outputs));
        var weights = StateDict.ToDictionary(loaded);
        try
        {
            StateDict.LoadStrict(model, weights, HfFixtures.Directory(architecture));
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
        model.train();

        using var scope = torch.NewDisposeScope();
        Tensor ids = Ints(@case, "input_ids")!;
        Tensor? types = Ints(@case, "token_type_ids");
        Tensor mask = Ints(@case, "attention_mask")!;
        Tensor labels = torch.tensor(HfFixtures.Longs(@case["labels"]));
        Tensor logits = model.call(ids, types, mask);
        Tensor loss = Losses.Compute(ProblemType.SingleLabelClassification, logits, labels);
        loss.backward();

        double lossDiff = Math.Abs(loss.item<float>() - @case["loss"]!.GetValue<float>());
        var expected = @case["grad_norms"]!.AsObject();
        var ours = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var failures = new List<string>();
        double maxRelative = 0, maxKeyBias = 0;
        foreach (var (key, node) in expected)
        {
            if (!ours.TryGetValue(key, out var parameter)) continue;
            double actual = parameter.grad is null ? 0 : parameter.grad.norm().item<float>();
            double reference = node?.GetValue<double>() ?? 0;
            if (isKeyBias(key))
            {
                maxKeyBias = Math.Max(maxKeyBias, actual);
                if (actual > keyBiasAbsolute) failures.Add($"{key}: grad norm {actual} (expected ~0)");
                continue;
            }
            double diff = Math.Abs(actual - reference) / Math.Max(reference, 1e-12);
            maxRelative = Math.Max(maxRelative, diff);
            if (diff > relative) failures.Add($"{key}: grad norm {actual} vs HF {reference} (relative {diff:g3})");
        }
        double maxHead = 0;
        foreach (var (key, node) in @case["head_grads"]!.AsObject())
        {
            if (!ours.TryGetValue(key, out var parameter)) continue;
            maxHead = Math.Max(maxHead, MaxAbsDiff(parameter.grad!, node));
        }
        var missing = expected.Select(e => e.Key).Where(k => !ours.ContainsKey(k)).ToList();
        var extra = ours.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        return new TrainStep(lossDiff, maxRelative, maxKeyBias, maxHead, missing, extra, failures);
    }
}
