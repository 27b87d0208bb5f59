using SharpTune.Checkpoints;
using SharpTune.Tokenization;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// A pretrained encoder ready for inference: the model with its weights loaded strictly, the tokenizer of the
/// same directory, and the directory itself. Disposing it disposes the model.
/// </summary>
public sealed class PretrainedEncoder : IDisposable
{
    private PretrainedEncoder(Encoder model, Tokenizer tokenizer, HfModelDirectory directory, IReadOnlyList<string> unusedKeys)
    {
        Model = model;
        Tokenizer = tokenizer;
        Directory = directory;
        UnusedKeys = unusedKeys;
    }

    /// <summary>The encoder, in eval mode.</summary>
    public Encoder Model { get; }
    /// <summary>The tokenizer read from the model directory.</summary>
    public Tokenizer Tokenizer { get; }
    /// <summary>The opened model directory (paths and config).</summary>
    public HfModelDirectory Directory { get; }
    /// <summary>
    /// Checkpoint keys outside the encoder that were not loaded: the head of a task checkpoint
    /// (<c>classifier.*</c>) or pre-training heads (<c>cls.*</c>, <c>lm_head.*</c>). Empty for a bare encoder.
    /// </summary>
    public IReadOnlyList<string> UnusedKeys { get; }

    /// <summary>The first unused keys for a message, e.g. "classifier.bias, classifier.weight" (with "…" past four).</summary>
    public string UnusedKeysSummary => string.Join(", ", UnusedKeys.Take(4)) + (UnusedKeys.Count > 4 ? ", …" : "");

    /// <summary>
    /// Opens the Hugging Face model directory <paramref name="modelDir"/> of any supported architecture (config.json's
    /// <c>model_type</c> picks it), builds the encoder, loads its weights strictly — from a bare encoder checkpoint, or
    /// the encoder part of a task checkpoint (whose other keys are listed in <see cref="UnusedKeys"/>) — reads the
    /// tokenizer files and puts the model in eval mode. When <paramref name="modelDir"/> is null, the packaged
    /// all-MiniLM-L6-v2 is used (imported into the cache on first use, see <see cref="PackagedModels.MiniLM"/>).
    /// </summary>
    /// <exception cref="SharpTuneException">The directory, a file or a key is missing or malformed; the message names it.</exception>
    public static PretrainedEncoder Load(string? modelDir = null)
    {
        Native.TorchRuntime.EnsureLoaded();
        var directory = HfModelDirectory.Open(modelDir ?? PackagedModels.MiniLM());
        var tokenizer = Tokenizer.FromDirectory(directory.Path);
        if (tokenizer.VocabSize > directory.Config.VocabSize)
            throw new SharpTuneException($"{directory.Path}: the tokenizer has {tokenizer.VocabSize} tokens but config.json's vocab_size is {directory.Config.VocabSize}.");

        var tensors = directory.LoadWeights();
        try
        {
            var (model, unused) = LoadEncoder(directory.Config, tensors, directory.WeightsPath);
            model.eval();
            return new PretrainedEncoder(model, tokenizer, directory, unused);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    /// <summary>
    /// Builds the encoder of <paramref name="config"/> and loads it strictly from <paramref name="tensors"/>: when any
    /// key carries the architecture's prefix (a task or pre-training checkpoint), the prefixed keys are the encoder and
    /// the others are returned as unused; otherwise every key is the encoder's. The pooler is built when the
    /// checkpoint has one (RoBERTa's task checkpoints do not).
    /// </summary>
    public static (Encoder Model, IReadOnlyList<string> UnusedKeys) LoadEncoder(EncoderConfig config, IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        Architecture architecture = Architectures.Of(config);
        bool prefixed = tensors.Keys.Any(k => k.StartsWith(architecture.KeyPrefix, StringComparison.Ordinal));
        var encoderTensors = prefixed
            ? tensors.Where(t => t.Key.StartsWith(architecture.KeyPrefix, StringComparison.Ordinal)).ToDictionary(t => t.Key[architecture.KeyPrefix.Length..], t => t.Value)
            : tensors.ToDictionary(t => t.Key, t => t.Value);
        var unused = prefixed ? tensors.Keys.Where(k => !k.StartsWith(architecture.KeyPrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList() : [];
        var model = architecture.Create(config, architecture.HasPoolerIn(encoderTensors.Keys));
        try
        {
            StateDict.LoadStrict(model, encoderTensors, source, KeyMap.For(architecture), [.. architecture.IgnoredKeys, "cls.*"]);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return (model, unused);
    }

    /// <summary>Disposes the model.</summary>
    public void Dispose() => Model.Dispose();
}
