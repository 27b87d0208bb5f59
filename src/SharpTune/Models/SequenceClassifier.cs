using SharpTune.Export;
using SharpTune.Heads;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// An encoder with a head: the model both fine-tuning methods train. The encoder's keys sit under its
/// architecture's prefix (<c>bert.*</c>, <c>roberta.*</c>, …). A head that is its architecture's HF head
/// (<see cref="HuggingFaceClass"/>) has HF's keys: <c>classifier.*</c>, or at the top level (see
/// <see cref="Head.KeysAtRoot"/>); any other head's keys sit under <c>sharptune_head.*</c>, a prefix no HF class
/// reads, so that Python never mistakes it for the HF head of the same shape.
/// </summary>
public sealed class SequenceClassifier : nn.Module<Tensor, Tensor?, Tensor?, Tensor>
{
    /// <summary>Puts <paramref name="head"/> on <paramref name="encoder"/>.</summary>
    public SequenceClassifier(Encoder encoder, Head head) : base("SequenceClassifier")
    {
        Encoder = encoder;
        Head = head;
        HuggingFaceClass = encoder.Architecture.HuggingFaceClassOf(encoder.Config, head);
        register_module(encoder.Architecture.Prefix, encoder);
        if (HuggingFaceClass is null) register_module(CustomHeadName, head);
        else if (!head.KeysAtRoot) register_module(HeadName, head);
        else foreach (var (name, child) in head.named_children()) register_module(name, child);
    }

    /// <summary>
    /// The HF task class this model is (its architecture's XForSequenceClassification or XForTokenClassification,
    /// see <see cref="Architecture.HuggingFaceClassOf"/>), or null when the head has no HF class.
    /// </summary>
    public string? HuggingFaceClass { get; }

    /// <summary>The encoder (the backbone).</summary>
    public Encoder Encoder { get; }
    /// <summary>The head.</summary>
    public Head Head { get; }
    /// <summary>Key prefix of the encoder's parameters (<c>bert.</c>, <c>roberta.</c>, …).</summary>
    public string EncoderPrefix => Encoder.Architecture.KeyPrefix;
    /// <summary>Name of an HF head module whose keys are not at the root.</summary>
    public const string HeadName = "classifier";
    /// <summary>Name of a head that has no HF class: its keys are <c>sharptune_head.*</c>.</summary>
    public const string CustomHeadName = "sharptune_head";
    /// <summary>The key prefix of <see cref="CustomHeadName"/>, with its dot.</summary>
    public const string CustomHeadPrefix = CustomHeadName + ".";

    /// <summary>Logits [batch, outputs] for token ids [batch, sequence].</summary>
    public override Tensor forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor? attentionMask)
    {
        Tensor features = EncodeFeatures(inputIds, tokenTypeIds, attentionMask);
        return Head.call(features, Head.Input == HeadInput.Sequence ? attentionMask : null);
    }

    /// <summary>
    /// Writes the graph of <see cref="forward"/> into <paramref name="g"/> (the encoder's, the feature selection, the
    /// head's) and returns the logits' value name; weights are named by their checkpoint keys.
    /// </summary>
    public string ExportOnnx(OnnxGraphBuilder g)
    {
        OnnxEncoderOutput output = Encoder.ExportOnnx(g, EncoderPrefix, pooled: Head.Input == HeadInput.Pooled);
        string features = Head.Input switch
        {
            HeadInput.FirstToken => g.FirstToken(output.LastHiddenState),
            HeadInput.Pooled => output.PooledOutput ?? throw new SharpTuneException("The head needs the pooled output, but the encoder has no pooler."),
            HeadInput.MeanPooled => g.MeanPool(output.LastHiddenState),
            HeadInput.Sequence => output.LastHiddenState,
            _ => throw new ArgumentOutOfRangeException(nameof(g)),
        };
        string headPrefix = HuggingFaceClass is null ? CustomHeadPrefix : Head.KeysAtRoot ? "" : HeadName + ".";
        return Head.ExportOnnx(g, headPrefix, features);
    }

    /// <summary>
    /// Runs the encoder and returns exactly what the head consumes (see <see cref="HeadInput"/>):
    /// the frozen strategy computes this once per example and trains the head on it.
    /// </summary>
    public Tensor EncodeFeatures(Tensor inputIds, Tensor? tokenTypeIds, Tensor? attentionMask)
    {
        EncoderOutput output = Encoder.call(inputIds, tokenTypeIds, attentionMask);
        return SelectFeatures(output, attentionMask, Head.Input);
    }

    /// <summary>Picks or pools the encoder output the way <paramref name="input"/> says.</summary>
    public static Tensor SelectFeatures(EncoderOutput output, Tensor? attentionMask, HeadInput input) => input switch
    {
        HeadInput.FirstToken => output.LastHiddenState.select(1, 0),
        HeadInput.Pooled => output.PooledOutput ?? throw new SharpTuneException("The head needs the pooled output, but the encoder has no pooler."),
        HeadInput.MeanPooled => MeanPool(output.LastHiddenState, attentionMask),
        HeadInput.Sequence => output.LastHiddenState,
        _ => throw new ArgumentOutOfRangeException(nameof(input)),
    };

    private static readonly Scalar NoTokens = 1e-9.ToScalar();

    /// <summary>Mean of the hidden states of the tokens whose mask is 1 (all tokens when the mask is null).</summary>
    public static Tensor MeanPool(Tensor lastHiddenState, Tensor? attentionMask)
    {
        if (attentionMask is null) return lastHiddenState.mean([1]);
        Tensor weights = attentionMask.unsqueeze(-1).to_type(lastHiddenState.dtype);
        Tensor summed = (lastHiddenState * weights).sum(1);
        Tensor counts = weights.sum(1).clamp_min(NoTokens);
        return summed / counts;
    }
}
