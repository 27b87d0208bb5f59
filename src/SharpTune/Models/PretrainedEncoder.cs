using SharpTune.Checkpoints;
using SharpTune.Tokenization;
using TorchSharp;

namespace SharpTune.Models;

/// <summary>
/// A pretrained encoder ready for inference: the model with its weights loaded strictly, the tokenizer of the
/// same directory, and the directory itself. Disposing it disposes the model.
/// </summary>
public sealed class PretrainedEncoder : IDisposable
{
    private PretrainedEncoder(BertModel model, BertTokenizer tokenizer, HfModelDirectory directory)
    {
        Model = model;
        Tokenizer = tokenizer;
        Directory = directory;
    }

    /// <summary>The encoder, in eval mode.</summary>
    public BertModel Model { get; }
    /// <summary>The tokenizer read from the model directory.</summary>
    public BertTokenizer Tokenizer { get; }
    /// <summary>The opened model directory (paths and config).</summary>
    public HfModelDirectory Directory { get; }

    /// <summary>
    /// Opens the Hugging Face model directory <paramref name="modelDir"/>, builds a <see cref="BertModel"/> from its
    /// config.json, loads model.safetensors strictly (HF BERT key map, <c>bert.</c> prefix accepted) and the tokenizer
    /// files, and puts the model in eval mode. When <paramref name="modelDir"/> is null, the packaged
    /// all-MiniLM-L6-v2 is used (imported into the cache on first use, see <see cref="PackagedModels.MiniLM"/>).
    /// </summary>
    /// <exception cref="SharpTuneException">The directory, a file or a key is missing or malformed; the message names it.</exception>
    public static PretrainedEncoder Load(string? modelDir = null)
    {
        Native.TorchRuntime.EnsureLoaded();
        var directory = HfModelDirectory.Open(modelDir ?? PackagedModels.MiniLM());
        var tokenizer = BertTokenizer.FromDirectory(directory.Path);
        if (tokenizer.VocabSize > directory.Config.VocabSize)
            throw new SharpTuneException($"{directory.Path}: the tokenizer has {tokenizer.VocabSize} tokens but config.json's vocab_size is {directory.Config.VocabSize}.");

        var model = new BertModel(directory.Config);
        try
        {
            var tensors = directory.LoadWeights();
            try
            {
                StateDict.LoadStrict(model, tensors, directory.WeightsPath, KeyMap.HuggingFaceBert, StateDict.BertModelIgnore);
            }
            finally
            {
                foreach (var tensor in tensors.Values) tensor.Dispose();
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return new PretrainedEncoder(model, tokenizer, directory);
    }

    /// <summary>Disposes the model.</summary>
    public void Dispose() => Model.Dispose();
}
