// RoBERTa and XLM-RoBERTa: BERT's layers and pooler (Bert.cs) under embeddings whose positions start after the
// padding id, as fairseq numbered them. Field names are the HF RobertaModel keys.
#pragma warning disable IDE1006 // field names are checkpoint key segments (LayerNorm), not C# style
using System.Text.Json.Serialization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Models;

/// <summary>RoBERTa's config: BERT's keys with <c>roberta-base</c>'s defaults (pad 1, 514 positions, one token type, eps 1e-5).</summary>
public sealed record RobertaConfig : BertConfig
{
    /// <summary>Creates a config with <c>roberta-base</c>'s defaults.</summary>
    public RobertaConfig()
    {
        ModelType = "roberta";
        VocabSize = 50265;
        MaxPositionEmbeddings = 514;
        PadTokenId = 1;
        TypeVocabSize = 1;
        LayerNormEps = 1e-5;
    }

    /// <summary>Positions start at <c>pad_token_id + 1</c>, so the longest input is two less than the table.</summary>
    [JsonIgnore] public override int MaxInputLength => MaxPositionEmbeddings - PadTokenId - 1;
}

/// <summary>The RoBERTa encoder (also XLM-RoBERTa): <see cref="BertModel"/> with <see cref="RobertaEmbeddings"/>.</summary>
public sealed class RobertaModel : BertModel
{
    /// <summary>RoBERTa in the registry. Its task models read the first token (no pooler in their checkpoints).</summary>
    public static new readonly Architecture Registration = BertModel.Registration with
    {
        ModelType = "roberta",
        Prefix = "roberta",
        ConfigType = typeof(RobertaConfig),
        Create = (config, pooler) => new RobertaModel((BertConfig)config, pooler),
        BaseClass = "RobertaModel",
        SequenceClassificationClass = "RobertaForSequenceClassification",
        TokenClassificationClass = "RobertaForTokenClassification",
        SequenceHead = (config, outputs) => new Heads.ClassificationHead(config.HiddenSize, outputs, config.ClassifierDropout),
    };

    /// <summary>XLM-RoBERTa: the same model under its own model type and class names (HF keeps the <c>roberta</c> prefix).</summary>
    public static readonly Architecture XlmRobertaRegistration = Registration with
    {
        ModelType = "xlm-roberta",
        BaseClass = "XLMRobertaModel",
        SequenceClassificationClass = "XLMRobertaForSequenceClassification",
        TokenClassificationClass = "XLMRobertaForTokenClassification",
    };

    /// <summary>Builds a randomly initialised encoder (load weights afterwards).</summary>
    public RobertaModel(BertConfig config, bool addPoolingLayer = true) : base(config, new RobertaEmbeddings(config), addPoolingLayer) { }
}

/// <summary>BERT's embeddings with fairseq's positions: real tokens get pad+1, pad+2, …; padding gets the pad id.</summary>
internal sealed class RobertaEmbeddings : Module<Tensor, Tensor?, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;
    private readonly long paddingIndex;

    public RobertaEmbeddings(BertConfig config) : base("embeddings")
    {
        word_embeddings = Embedding(config.VocabSize, config.HiddenSize);
        position_embeddings = Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        token_type_embeddings = Embedding(config.TypeVocabSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = Dropout(config.HiddenDropoutProb);
        paddingIndex = config.PadTokenId;
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds, Tensor? tokenTypeIds)
    {
        long last = inputIds.shape[1] + paddingIndex;
        if (last >= position_embeddings.weight!.shape[0])
            throw new SharpTuneException($"Input has {inputIds.shape[1]} tokens; positions start at {paddingIndex + 1} and the model's max_position_embeddings is {position_embeddings.weight.shape[0]}.");
        using var isToken = inputIds.ne(paddingIndex).to_type(ScalarType.Int64);
        using var positionIds = torch.cumsum(isToken, 1).mul_(isToken).add_(paddingIndex);
        using var zeros = tokenTypeIds is null ? torch.zeros_like(inputIds) : null;
        Tensor words = word_embeddings.call(inputIds);
        Tensor positions = position_embeddings.call(positionIds);
        Tensor types = token_type_embeddings.call(tokenTypeIds ?? zeros!);
        Tensor sum = words + positions + types;
        return dropout.call(LayerNorm.call(sum));
    }
}
