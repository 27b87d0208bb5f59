// RoBERTa and XLM-RoBERTa: BERT's layers and pooler (Bert.cs) under embeddings whose positions start after the
// padding id, as fairseq numbered them. Field names are the HF RobertaModel keys.
using System.Text.Json.Serialization;
using SharpTune.Export;
using SharpTune.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

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
internal sealed class RobertaEmbeddings(BertConfig config) : BertEmbeddings(config)
{
    private readonly long paddingIndex = config.PadTokenId;

    protected override Tensor PositionIds(Tensor inputIds)
    {
        using var padding = paddingIndex.ToScalar();
        using var isToken = inputIds.ne(padding).to_type(ScalarType.Int64);
        return torch.cumsum(isToken, 1).mul_(isToken).add_(padding, Scalars.One);
    }

    // Real tokens count from pad + 1, so a row of L tokens reaches pad + L.
    protected override long FirstPosition => paddingIndex + 1;

    protected override string PositionsOnnx(OnnxGraphBuilder g, Embedding table, string key)
    {
        string padding = g.Constant(paddingIndex);
        string isToken = g.Cast(g.Not(g.Equal(g.InputIds, padding)), Checkpoints.OnnxDataType.Int64);
        string positionIds = g.Add(g.Mul(g.CumSum(isToken, 1), isToken), padding);
        return g.Embedding(table, key, positionIds);
    }

    // RoBERTa has one token type (type_vocab_size 1): HF's exports have no token_type_ids input.
    protected override bool TokenTypesOnnx => false;
}
