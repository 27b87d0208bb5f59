using SharpTune.Models;

namespace SharpTune.Tests;

/// <summary>A tiny random BERT config for unit tests, as HF's own model testers use.</summary>
internal static class TinyModels
{
    public static BertConfig Config() => new()
    {
        VocabSize = 99, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 37,
        MaxPositionEmbeddings = 64, TypeVocabSize = 2, HiddenDropoutProb = 0.1, AttentionProbsDropoutProb = 0.1,
    };
}
