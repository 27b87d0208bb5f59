using SharpTune.Models;

namespace SharpTune.Checkpoints;

/// <summary>The state-dict keys of a Hugging Face <c>BertModel</c> (no prefix) and their shapes.</summary>
public static class BertKeys
{
    /// <summary>Every parameter key of <c>BertModel</c> for <paramref name="config"/>, in forward order, with its shape.</summary>
    public static IReadOnlyDictionary<string, long[]> Expected(BertConfig config)
    {
        long h = config.HiddenSize, ff = config.IntermediateSize;
        var keys = new Dictionary<string, long[]>
        {
            ["embeddings.word_embeddings.weight"] = [config.VocabSize, h],
            ["embeddings.position_embeddings.weight"] = [config.MaxPositionEmbeddings, h],
            ["embeddings.token_type_embeddings.weight"] = [config.TypeVocabSize, h],
            ["embeddings.LayerNorm.weight"] = [h],
            ["embeddings.LayerNorm.bias"] = [h],
        };
        void Linear(string module, long inFeatures, long outFeatures)
        {
            keys[module + ".weight"] = [outFeatures, inFeatures];
            keys[module + ".bias"] = [outFeatures];
        }
        void LayerNorm(string module)
        {
            keys[module + ".weight"] = [h];
            keys[module + ".bias"] = [h];
        }
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            string layer = $"encoder.layer.{i}.";
            Linear(layer + "attention.self.query", h, h);
            Linear(layer + "attention.self.key", h, h);
            Linear(layer + "attention.self.value", h, h);
            Linear(layer + "attention.output.dense", h, h);
            LayerNorm(layer + "attention.output.LayerNorm");
            Linear(layer + "intermediate.dense", h, ff);
            Linear(layer + "output.dense", ff, h);
            LayerNorm(layer + "output.LayerNorm");
        }
        Linear("pooler.dense", h, h);
        return keys;
    }
}
