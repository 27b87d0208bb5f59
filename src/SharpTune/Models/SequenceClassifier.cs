#pragma warning disable IDE1006 // field names are checkpoint key segments (bert, classifier)
using SharpTune.Heads;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>What the task model learns: one label, several labels, or a number.</summary>
public enum ProblemType
{
    /// <summary>One label per example; cross-entropy over the logits (or BCE on one logit for two labels).</summary>
    SingleLabelClassification,
    /// <summary>Any number of labels per example; binary cross-entropy on each logit.</summary>
    MultiLabelClassification,
    /// <summary>A real-valued target; mean squared error.</summary>
    Regression,
}

/// <summary>
/// A BERT encoder with a head: the model both fine-tuning methods train. Keys are
/// <c>bert.*</c> for the encoder and <c>classifier.*</c> for the head, as HF's
/// <c>BertForSequenceClassification</c> names them.
/// </summary>
public sealed class SequenceClassifier : nn.Module<Tensor, Tensor?, Tensor?, Tensor>
{
    private readonly BertModel bert;
    private readonly Head classifier;

    /// <summary>Puts <paramref name="head"/> on <paramref name="encoder"/>.</summary>
    public SequenceClassifier(BertModel encoder, Head head) : base("SequenceClassifier")
    {
        bert = encoder;
        classifier = head;
        RegisterComponents();
    }

    /// <summary>The encoder (the backbone).</summary>
    public BertModel Encoder => bert;
    /// <summary>The head.</summary>
    public Head Head => classifier;
    /// <summary>Key prefix of the encoder's parameters.</summary>
    public const string EncoderPrefix = "bert.";
    /// <summary>Key prefix of the head's parameters.</summary>
    public const string HeadPrefix = "classifier.";

    /// <summary>Logits [batch, outputs] for token ids [batch, sequence].</summary>
    public override Tensor forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor? attentionMask)
    {
        Tensor features = EncodeFeatures(inputIds, tokenTypeIds, attentionMask);
        return classifier.call(features, classifier.Input == HeadInput.Sequence ? attentionMask : null);
    }

    /// <summary>
    /// Runs the encoder and returns exactly what the head consumes (see <see cref="HeadInput"/>):
    /// the frozen strategy computes this once per example and trains the head on it.
    /// </summary>
    public Tensor EncodeFeatures(Tensor inputIds, Tensor? tokenTypeIds, Tensor? attentionMask)
    {
        EncoderOutput output = bert.call(inputIds, tokenTypeIds, attentionMask);
        return SelectFeatures(output, attentionMask, classifier.Input);
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

    /// <summary>Mean of the hidden states of the tokens whose mask is 1 (all tokens when the mask is null).</summary>
    public static Tensor MeanPool(Tensor lastHiddenState, Tensor? attentionMask)
    {
        if (attentionMask is null) return lastHiddenState.mean([1]);
        Tensor weights = attentionMask.unsqueeze(-1).to_type(lastHiddenState.dtype);
        Tensor summed = (lastHiddenState * weights).sum(1);
        Tensor counts = weights.sum(1).clamp_min(1e-9);
        return summed / counts;
    }
}
