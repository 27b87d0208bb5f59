#pragma warning disable IDE1006 // field names are checkpoint key segments
using System.Text.Json.Nodes;
using SharpTune.Export;
using SharpTune.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Heads;

/// <summary>
/// DeBERTa's sequence head, as HF <c>DebertaV2ForSequenceClassification</c>: the ContextPooler (first token → dropout
/// → <c>pooler.dense</c> → activation) → dropout → <c>classifier</c>. Its keys (<c>pooler.dense.*</c>,
/// <c>classifier.*</c>) sit at the task model's top level.
/// </summary>
public sealed class ContextPoolerHead : Head
{
    private readonly ContextPooler pooler;
    private readonly FastDropout dropout;
    private readonly Linear classifier;
    private readonly double dropoutProbability;
    private readonly double poolerDropout;
    private readonly string poolerActivation;
    private readonly int poolerHiddenSize;

    /// <summary>
    /// Creates the head for <paramref name="hiddenSize"/> features and <paramref name="outputs"/> logits:
    /// <paramref name="dropoutProbability"/> before the classifier (HF's cls_dropout), <paramref name="poolerDropout"/>
    /// before pooler.dense, <paramref name="poolerActivation"/> after it; <paramref name="poolerHiddenSize"/> (null:
    /// the hidden size) must equal the hidden size.
    /// </summary>
    public ContextPoolerHead(int hiddenSize, int outputs, double dropoutProbability = 0.1, double poolerDropout = 0,
        string poolerActivation = "gelu", int? poolerHiddenSize = null) : base("context_pooler_head")
    {
        if (!Models.Activations.Names.Contains(poolerActivation))
            throw new SharpTuneException($"head option pooler_hidden_act '{poolerActivation}' is not one of {string.Join(", ", Models.Activations.Names)}.");
        int width = poolerHiddenSize ?? hiddenSize;
        if (width != hiddenSize)
            throw new SharpTuneException($"head option pooler_hidden_size ({width}) must equal the hidden size ({hiddenSize}).");
        pooler = new ContextPooler(width, poolerDropout, poolerActivation);
        dropout = new FastDropout(dropoutProbability);
        classifier = Linear(hiddenSize, outputs);
        this.dropoutProbability = dropoutProbability;
        this.poolerDropout = poolerDropout;
        this.poolerActivation = poolerActivation;
        this.poolerHiddenSize = width;
        Outputs = outputs;
        RegisterComponents();
    }

    /// <summary>The head of HF's DebertaV2ForSequenceClassification for <paramref name="config"/>.</summary>
    public static ContextPoolerHead For(DebertaV2Config config, int outputs) =>
        new(config.HiddenSize, outputs, config.ClassifierDropout, config.PoolerDropout, config.PoolerHiddenAct, config.PoolerWidth);

    /// <inheritdoc />
    public override bool KeysAtRoot => true;
    /// <inheritdoc />
    public override HeadInput Input => HeadInput.FirstToken;
    /// <inheritdoc />
    public override int Outputs { get; }
    /// <inheritdoc />
    public override JsonObject Options() => new()
    {
        ["dropout"] = dropoutProbability,
        ["pooler_dropout"] = poolerDropout,
        ["pooler_hidden_act"] = poolerActivation,
        ["pooler_hidden_size"] = poolerHiddenSize,
    };

    /// <summary>The ContextPooler's output for first-token features [batch, hidden] (HF's pooled output).</summary>
    public Tensor Pool(Tensor features) => pooler.call(features);

    /// <inheritdoc />
    public override Tensor forward(Tensor features, Tensor? attentionMask) => classifier.call(dropout.call(pooler.call(features)));

    /// <inheritdoc />
    public override string ExportOnnx(OnnxGraphBuilder g, string prefix, string features) =>
        g.Linear(classifier, prefix + "classifier", pooler.ExportOnnx(g, prefix + "pooler.", features));
}

/// <summary>HF's ContextPooler: dropout → dense → activation on the first token's hidden state.</summary>
internal sealed class ContextPooler : Module<Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly FastDropout dropout;
    private readonly string activation;

    public ContextPooler(int width, double dropoutProbability, string activation) : base("pooler")
    {
        dense = Linear(width, width);
        dropout = new FastDropout(dropoutProbability);
        this.activation = activation;
        RegisterComponents();
    }

    public override Tensor forward(Tensor firstToken) => Models.Activations.Apply(activation, dense.call(dropout.call(firstToken)));

    public string ExportOnnx(OnnxGraphBuilder g, string prefix, string firstToken) =>
        g.Activation(activation, g.Linear(dense, prefix + "dense", firstToken));
}
