#pragma warning disable IDE1006 // field names are checkpoint key segments
using System.Text.Json.Nodes;
using SharpTune.Export;
using SharpTune.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Heads;

/// <summary>
/// DistilBERT's classification head: first token → pre_classifier → ReLU → dropout → classifier, as HF
/// <c>DistilBertForSequenceClassification</c> has it. Its keys (<c>pre_classifier.*</c>, <c>classifier.*</c>) sit at the
/// task model's top level, so the head holds submodules only.
/// </summary>
public sealed class PreClassifierHead : Head
{
    private readonly Linear pre_classifier;
    private readonly FastDropout dropout;
    private readonly Linear classifier;
    private readonly double dropoutProbability;

    /// <summary>Creates the head for <paramref name="hiddenSize"/> features and <paramref name="outputs"/> logits (HF's default dropout: seq_classif_dropout 0.2).</summary>
    public PreClassifierHead(int hiddenSize, int outputs, double dropoutProbability = 0.2) : base("pre_classifier_head")
    {
        pre_classifier = Linear(hiddenSize, hiddenSize);
        dropout = new FastDropout(dropoutProbability);
        classifier = Linear(hiddenSize, outputs);
        this.dropoutProbability = dropoutProbability;
        Outputs = outputs;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override bool KeysAtRoot => true;
    /// <inheritdoc />
    public override HeadInput Input => HeadInput.FirstToken;
    /// <inheritdoc />
    public override int Outputs { get; }
    /// <inheritdoc />
    public override JsonObject Options() => new() { ["dropout"] = dropoutProbability };

    /// <inheritdoc />
    public override Tensor forward(Tensor features, Tensor? attentionMask)
    {
        Tensor x = functional.relu(pre_classifier.call(features));
        return classifier.call(dropout.call(x));
    }

    /// <inheritdoc />
    public override string ExportOnnx(OnnxGraphBuilder g, string prefix, string features)
    {
        string x = g.Activation("relu", g.Linear(pre_classifier, prefix + "pre_classifier", features));
        return g.Linear(classifier, prefix + "classifier", x);
    }
}
