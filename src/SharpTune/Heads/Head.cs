using System.Text.Json.Nodes;
using SharpTune.Export;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Heads;

/// <summary>Which encoder output a head consumes; the frozen-feature cache stores exactly this.</summary>
public enum HeadInput
{
    /// <summary>The first token's final hidden state ([CLS] or &lt;s&gt;): [batch, hidden].</summary>
    FirstToken,
    /// <summary>BERT's pooled output, tanh(dense([CLS])): [batch, hidden].</summary>
    Pooled,
    /// <summary>The mean of the final hidden states of the real (unpadded) tokens: [batch, hidden].</summary>
    MeanPooled,
    /// <summary>Every token's final hidden state: [batch, sequence, hidden], with the attention mask.</summary>
    Sequence,
}

/// <summary>
/// A task head: a small module on top of the encoder that turns the features it declares in
/// <see cref="Input"/> into logits [batch, outputs] (or [batch, sequence, outputs], see <see cref="PerToken"/>). Subclass it for a custom head; the loss lives
/// outside the head and is chosen once from the task.
/// </summary>
public abstract class Head : nn.Module<Tensor, Tensor?, Tensor>
{
    /// <summary>Creates the head; its parameters are saved under the task model's <c>classifier.</c> prefix unless <see cref="KeysAtRoot"/>.</summary>
    protected Head(string name) : base(name) { }

    /// <summary>
    /// False (the default): the head's keys are <c>classifier.*</c>. True: its submodules sit at the task model's top
    /// level under their own names, as HF heads that span several names do (DistilBERT's <c>pre_classifier</c> and
    /// <c>classifier</c>, DeBERTa's <c>pooler</c> and <c>classifier</c>); such a head holds submodules only.
    /// </summary>
    public virtual bool KeysAtRoot => false;

    /// <summary>What the head consumes.</summary>
    public abstract HeadInput Input { get; }

    /// <summary>
    /// False (the default): logits [batch, outputs], one row per text. True: logits [batch, sequence, outputs], one row
    /// per token (a token-classification head; its <see cref="Input"/> is <see cref="HeadInput.Sequence"/>).
    /// </summary>
    public virtual bool PerToken => false;

    /// <summary>Number of logits per example (per token when <see cref="PerToken"/>).</summary>
    public abstract int Outputs { get; }

    /// <summary>
    /// Options that rebuild this head (saved in sharptune.json beside the weights, never code);
    /// <see cref="HeadRegistry"/> maps the type name back to a factory.
    /// </summary>
    public virtual JsonObject Options() => new();

    /// <summary>Runs the head. <paramref name="attentionMask"/> is only given for <see cref="HeadInput.Sequence"/>.</summary>
    public abstract override Tensor forward(Tensor features, Tensor? attentionMask);

    /// <summary>Whether this head's type overrides <see cref="ExportOnnx"/>, i.e. whether a model with it can be exported.</summary>
    public bool HasOnnxExport =>
        GetType().GetMethod(nameof(ExportOnnx), [typeof(OnnxGraphBuilder), typeof(string), typeof(string)])?.DeclaringType != typeof(Head);

    /// <summary>
    /// Writes the head's graph into <paramref name="g"/>: <paramref name="features"/> (what <see cref="Input"/> says,
    /// already selected) in, logits out; weights are named <paramref name="prefix"/> + their key. A head that does not
    /// override it has no ONNX export.
    /// </summary>
    public virtual string ExportOnnx(OnnxGraphBuilder g, string prefix, string features) =>
        throw new SharpTuneException($"head {GetType().Name} has no ONNX export: it does not override Head.ExportOnnx to describe its graph.");
}
