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
}
