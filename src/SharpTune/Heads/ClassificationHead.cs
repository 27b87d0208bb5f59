#pragma warning disable IDE1006 // field names are checkpoint key segments
using System.Text.Json.Nodes;
using SharpTune.Export;
using SharpTune.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Heads;

/// <summary>
/// RoBERTa's classification head: first token → dropout → dense → tanh → dropout → out_proj
/// (keys <c>classifier.dense.*</c>, <c>classifier.out_proj.*</c>, as HF <c>RobertaClassificationHead</c>); with
/// activation gelu it is HF's <c>ElectraClassificationHead</c>.
/// </summary>
public sealed class ClassificationHead : Head
{
    private readonly FastDropout dropout;
    private readonly Linear dense;
    private readonly Linear out_proj;
    private readonly double dropoutProbability;
    private readonly string activation;

    /// <summary>Creates the head for <paramref name="hiddenSize"/> features and <paramref name="outputs"/> logits; <paramref name="activation"/> after dense (tanh; ELECTRA: gelu).</summary>
    public ClassificationHead(int hiddenSize, int outputs, double dropoutProbability = 0.1, string activation = "tanh") : base("classifier")
    {
        if (!Models.Activations.Names.Contains(activation))
            throw new SharpTuneException($"head option activation '{activation}' is not one of {string.Join(", ", Models.Activations.Names)}.");
        this.activation = activation;
        dropout = new FastDropout(dropoutProbability);
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
    public override JsonObject Options() => activation == "tanh"
        ? new() { ["dropout"] = dropoutProbability }
        : new() { ["dropout"] = dropoutProbability, ["activation"] = activation };

    /// <inheritdoc />
    public override Tensor forward(Tensor features, Tensor? attentionMask)
    {
        Tensor x = dropout.call(features);
        x = Models.Activations.Apply(activation, dense.call(x));
        x = dropout.call(x);
        return out_proj.call(x);
    }

    /// <inheritdoc />
    public override string ExportOnnx(OnnxGraphBuilder g, string prefix, string features)
    {
        string x = g.Activation(activation, g.Linear(dense, prefix + "dense", features));
        return g.Linear(out_proj, prefix + "out_proj", x);
    }
}
