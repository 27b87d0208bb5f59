using SharpTune.Export;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>What an encoder returns: every token's final hidden state, and the pooled vector when it has a pooler.</summary>
/// <param name="LastHiddenState">[batch, sequence, hidden].</param>
/// <param name="PooledOutput">[batch, hidden]: BERT's tanh(dense(first token)); null when the model has no pooler.</param>
public sealed record EncoderOutput(Tensor LastHiddenState, Tensor? PooledOutput);

/// <summary>
/// The contract every architecture's encoder implements: token ids, token types and the attention mask in, hidden
/// states out. Parameter names are the architecture's Hugging Face base-model keys (without its prefix); how they
/// group, which Linear layers LoRA targets and how it is saved is said by its <see cref="Architecture"/>.
/// </summary>
public abstract class Encoder : nn.Module<Tensor, Tensor?, Tensor?, EncoderOutput>
{
    /// <summary>Creates the module.</summary>
    protected Encoder(string name) : base(name) { }

    /// <summary>The configuration the encoder was built from.</summary>
    public abstract EncoderConfig Config { get; }

    /// <summary>The architecture's description (prefix, key groups, LoRA targets, HF class names).</summary>
    public Architecture Architecture => Architectures.Of(Config);

    /// <summary>True when the encoder computes <see cref="EncoderOutput.PooledOutput"/>.</summary>
    public abstract bool HasPooler { get; }

    /// <summary>
    /// Runs the encoder. <paramref name="inputIds"/>: [batch, sequence] int64; <paramref name="tokenTypeIds"/>
    /// (zeros when null; ignored by architectures without token types) and <paramref name="attentionMask"/>
    /// (1 = token, 0 = padding; all ones when null) alike.
    /// </summary>
    public abstract override EncoderOutput forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor? attentionMask);

    /// <summary>
    /// Writes the encoder's graph into <paramref name="g"/>, in the order of <see cref="forward"/>, reading
    /// <see cref="OnnxGraphBuilder.InputIds"/> and <see cref="OnnxGraphBuilder.AttentionMask"/> (and
    /// <see cref="OnnxGraphBuilder.TokenTypeIds"/> when the architecture uses token types); weights are named
    /// <paramref name="prefix"/> + their key. <paramref name="pooled"/>: also the pooler, when the encoder has one.
    /// An architecture that does not override it has no ONNX export.
    /// </summary>
    public virtual OnnxEncoderOutput ExportOnnx(OnnxGraphBuilder g, string prefix, bool pooled) =>
        throw new SharpTuneException($"ONNX export of model_type '{Config.ModelType}' is not supported: {GetType().Name} does not describe its graph.");

    /// <summary>
    /// HF's <c>_init_weights</c> for a freshly built encoder: normal(0, initializer_range) for Linear and Embedding
    /// weights, zero biases, LayerNorm weight 1 and bias 0. Architectures with other parameters override it.
    /// </summary>
    protected void InitializeWeights()
    {
        using var noGrad = TorchSharp.torch.no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            if (name.EndsWith("LayerNorm.weight", StringComparison.Ordinal) || name.EndsWith("layer_norm.weight", StringComparison.Ordinal)) parameter.fill_(Native.Scalars.One);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) parameter.zero_();
            else parameter.normal_(0, Config.InitializerRange);
        }
        // HF zeroes the padding row of the word embeddings (Embedding(padding_idx=pad_token_id)).
        if (named_parameters().FirstOrDefault(p => p.name == "embeddings.word_embeddings.weight").parameter is { } words)
            words[Config.PadTokenId].zero_();
    }
}
