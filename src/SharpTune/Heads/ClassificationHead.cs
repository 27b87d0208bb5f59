#pragma warning disable IDE1006 // field names are checkpoint key segments
using System.Text.Json.Nodes;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Heads;

/// <summary>
/// RoBERTa's classification head: first token → dropout → dense → tanh → dropout → out_proj
/// (keys <c>classifier.dense.*</c>, <c>classifier.out_proj.*</c>, as HF <c>RobertaClassificationHead</c>).
/// </summary>
public sealed class ClassificationHead : Head
{
    private readonly Dropout dropout;
    private readonly Linear dense;
    private readonly Linear out_proj;
    private readonly double dropoutProbability;

    /// <summary>Creates the head for <paramref name="hiddenSize"/> features and <paramref name="outputs"/> logits.</summary>
    public ClassificationHead(int hiddenSize, int outputs, double dropoutProbability = 0.1) : base("classifier")
    {
        dropout = Dropout(dropoutProbability);
        dense = Linear(hiddenSize, hiddenSize);
        out_proj = Linear(hiddenSize, outputs);
        this.dropoutProbability = dropoutProbability;
        Outputs = outputs;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override HeadInput Input => HeadInput.FirstToken;
    /// <inheritdoc />
    public override int Outputs { get; }
    /// <inheritdoc />
    public override JsonObject Options() => new() { ["dropout"] = dropoutProbability };

    /// <inheritdoc />
    public override Tensor forward(Tensor features, Tensor? attentionMask)
    {
        Tensor x = dropout.call(features);
        x = tanh(dense.call(x));
        x = dropout.call(x);
        return out_proj.call(x);
    }
}
