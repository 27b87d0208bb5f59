#pragma warning disable IDE1006 // field names are checkpoint key segments
using System.Text.Json.Nodes;
using SharpTune.Export;
using SharpTune.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Heads;

/// <summary>
/// Dropout → linear on a [batch, hidden] feature. Its parameters sit directly under the head
/// (<c>classifier.weight</c>, <c>classifier.bias</c>), as HF <c>BertForSequenceClassification</c> saves them.
/// </summary>
public abstract class LinearHead : Head
{
    private readonly FastDropout dropout;
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly double dropoutProbability;

    /// <summary>Creates the head; weights as HF initialises them (normal(0, 0.02), zero bias).</summary>
    protected LinearHead(int hiddenSize, int outputs, double dropoutProbability) : base("classifier")
    {
        dropout = new FastDropout(dropoutProbability);
        weight = Parameter(torch.empty(outputs, hiddenSize).normal_(0, 0.02));
        bias = Parameter(torch.zeros(outputs));
        this.dropoutProbability = dropoutProbability;
        Outputs = outputs;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override int Outputs { get; }
    /// <inheritdoc />
    public override JsonObject Options() => new() { ["dropout"] = dropoutProbability };

    /// <inheritdoc />
    public override Tensor forward(Tensor features, Tensor? attentionMask) =>
        functional.linear(dropout.call(features), weight, bias);

    /// <inheritdoc />
    public override string ExportOnnx(OnnxGraphBuilder g, string prefix, string features) =>
        g.Linear(weight, bias, prefix + "weight", prefix + "bias", features);
}

/// <summary>BERT's pooled output → dropout → linear: HF <c>BertForSequenceClassification</c>'s head.</summary>
public sealed class PooledHead(int hiddenSize, int outputs, double dropoutProbability = 0.1)
    : LinearHead(hiddenSize, outputs, dropoutProbability)
{
    /// <inheritdoc />
    public override HeadInput Input => HeadInput.Pooled;
}

/// <summary>Mean of the real tokens' hidden states (sentence-transformers pooling) → dropout → linear.</summary>
public sealed class MeanPoolingHead(int hiddenSize, int outputs, double dropoutProbability = 0.1)
    : LinearHead(hiddenSize, outputs, dropoutProbability)
{
    /// <inheritdoc />
    public override HeadInput Input => HeadInput.MeanPooled;
}

/// <summary>
/// Dropout → linear on every token's hidden state: logits [batch, sequence, outputs], HF's
/// <c>XForTokenClassification</c> head (<c>classifier.weight</c>, <c>classifier.bias</c>) for every supported architecture.
/// </summary>
public sealed class TokenClassificationHead(int hiddenSize, int outputs, double dropoutProbability = 0.1)
    : LinearHead(hiddenSize, outputs, dropoutProbability)
{
    /// <inheritdoc />
    public override HeadInput Input => HeadInput.Sequence;

    /// <inheritdoc />
    public override bool PerToken => true;
}
