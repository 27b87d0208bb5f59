using SharpTune.Models;
using SharpTune.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Inference;

/// <summary>How token states become one vector per text.</summary>
public enum Pooling
{
    /// <summary>The final hidden state of the first token ([CLS]); not the tanh pooler.</summary>
    Cls,
    /// <summary>The mean of the final hidden states of the real tokens (padding excluded), as sentence-transformers does.</summary>
    Mean,
    /// <summary>No pooling: every real token's final hidden state.</summary>
    None,
}

/// <summary>Options of an <see cref="Embedder"/>.</summary>
public sealed record EmbedderOptions
{
    /// <summary>The pooling; default <see cref="Inference.Pooling.Mean"/>.</summary>
    public Pooling Pooling { get; init; } = Pooling.Mean;
    /// <summary>Scale each vector (each token row, for <see cref="Inference.Pooling.None"/>) to unit L2 norm; default false.</summary>
    public bool Normalize { get; init; }
    /// <summary>Truncate inputs to this many tokens, special tokens included; default (null) the smaller of the tokenizer's model_max_length and max_position_embeddings.</summary>
    public int? MaxLength { get; init; }
    /// <summary>Texts per forward pass; default 32.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Number format of the encoder's matrix multiplications (bf16: mixed precision, fp32 weights).</summary>
    public Precision Precision { get; init; } = Precision.Fp32;

    /// <summary>Where TorchSharp runs the encoder: cpu (default), cuda or cuda:N; the model is moved there on first use.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Checks the values; the message names the field.</summary>
    public EmbedderOptions Validate(int maxPositions)
    {
        if (BatchSize < 1) throw new SharpTuneException($"batch_size must be at least 1 (got {BatchSize}).");
        if (MaxLength is int n && (n < 3 || n > maxPositions))
            throw new SharpTuneException($"max_length must be between 3 and the model's max_position_embeddings {maxPositions} (got {n}).");
        return this;
    }
}

/// <summary>One embedded input.</summary>
/// <param name="InputIds">The token ids the model saw (special tokens included, after truncation).</param>
/// <param name="Rows">One row for <see cref="Pooling.Cls"/> and <see cref="Pooling.Mean"/>; one row per token for <see cref="Pooling.None"/>. Each row has hidden_size values.</param>
/// <param name="Pooling">The pooling that produced <paramref name="Rows"/>.</param>
public sealed record TextEmbedding(long[] InputIds, float[][] Rows, Pooling Pooling)
{
    /// <summary>The pooled vector.</summary>
    /// <exception cref="InvalidOperationException">The pooling is <see cref="Pooling.None"/> (use <see cref="Rows"/>).</exception>
    public float[] Vector => Pooling != Pooling.None ? Rows[0]
        : throw new InvalidOperationException("Pooling None gives one row per token; read Rows.");
}

/// <summary>
/// Embeds texts (and optional text pairs) with a pretrained encoder: batches of similar length, under no_grad
/// and in eval mode, pooled as <see cref="EmbedderOptions.Pooling"/> says.
/// </summary>
public sealed class Embedder
{
    private readonly Encoder model;
    private readonly Tokenizer tokenizer;
    private readonly Device device;

    /// <summary>Creates an embedder over <paramref name="model"/> and <paramref name="tokenizer"/>.</summary>
    public Embedder(Encoder model, Tokenizer tokenizer, EmbedderOptions? options = null)
    {
        this.model = model;
        this.tokenizer = tokenizer;
        Options = (options ?? new EmbedderOptions()).Validate(model.Config.MaxPositionEmbeddings);
        device = Native.Devices.Parse(Options.Device);
        MaxLength = Options.MaxLength ?? Math.Min(tokenizer.ModelMaxLength, model.Config.MaxPositionEmbeddings);
    }

    /// <summary>Creates an embedder over a loaded pretrained encoder.</summary>
    public Embedder(PretrainedEncoder encoder, EmbedderOptions? options = null) : this(encoder.Model, encoder.Tokenizer, options) { }

    /// <summary>The options in force.</summary>
    public EmbedderOptions Options { get; }

    /// <summary>The truncation length in tokens.</summary>
    public int MaxLength { get; }

    /// <summary>The encoder (for <see cref="CorpusEmbedder"/>'s record of which weights wrote a file).</summary>
    internal Encoder Model => model;

    /// <summary>
    /// When set, ONNX Runtime computes the hidden states from this export of the encoder (see
    /// <see cref="Export.RuntimeSelector.ForEncoder"/>) instead of TorchSharp; pooling stays the same.
    /// Not owned: the caller disposes it. Float32 only.
    /// </summary>
    public Export.OnnxRuntimeModel? OnnxRuntime { get; set; }

    /// <summary>Embeds one text (or a text pair).</summary>
    public TextEmbedding Embed(string text, string? pair = null) => Embed([text], pair is null ? null : [pair])[0];

    /// <summary>
    /// Embeds every text, with <paramref name="pairs"/>[i] as the second segment of text i when given (null entries: no pair).
    /// Results are in input order. The model's training mode is restored afterwards.
    /// </summary>
    public IReadOnlyList<TextEmbedding> Embed(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (OnnxRuntime is not null && Options.Precision != Precision.Fp32)
            throw new SharpTuneException($"--precision {Options.Precision.ToString().ToLowerInvariant()} does not apply to --runtime onnx, which runs the float32 export; use --precision fp32.");
        if (pairs is not null && pairs.Count != texts.Count)
            throw new SharpTuneException($"{pairs.Count} text pairs given for {texts.Count} texts; give one per text.");
        var encoded = new EncodedText[texts.Count];
        for (int i = 0; i < texts.Count; i++) encoded[i] = tokenizer.Encode(texts[i], pairs?[i], MaxLength);

        // Longest first, so that each batch pads little; stable for equal lengths.
        int[] order = Enumerable.Range(0, encoded.Length).OrderByDescending(i => encoded[i].InputIds.Length).ToArray();
        var results = new TextEmbedding[encoded.Length];
        if (OnnxRuntime is null) Native.Devices.PlaceOn(model, device);
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = torch.no_grad();
            using var autocast = Autocast.Enter(Options.Precision);
            foreach (int[] chunk in order.Chunk(Options.BatchSize))
            {
                using var scope = torch.NewDisposeScope();
                EncodedText[] rows = chunk.Select(i => encoded[i]).ToArray();
                float[][][] embedded = EmbedBatch(rows);
                for (int r = 0; r < chunk.Length; r++) results[chunk[r]] = new TextEmbedding(rows[r].InputIds, embedded[r], Options.Pooling);
            }
        }
        finally
        {
            model.train(wasTraining);
        }
        return results;
    }

    /// <summary>Cosine similarity of two vectors of equal length.</summary>
    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"Vectors differ in length: {a.Length} vs {b.Length}.");
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }

    // One padded forward pass; returns, per row, its pooled vector (one row) or its real tokens' states.
    private float[][][] EmbedBatch(EncodedText[] rows)
    {
        var batch = Pad(rows);
        var (ids, types, mask) = batch.ToTensors();
        if (OnnxRuntime is null) (ids, types, mask) = (ids.to(device), types.to(device), mask.to(device));
        Tensor hidden = OnnxRuntime is { } onnx ? onnx.Run(ids, types, mask) : model.call(ids, types, mask).LastHiddenState;   // [batch, sequence, hidden]
        int width = (int)hidden.shape[2];

        Tensor output = Options.Pooling switch
        {
            Pooling.Cls => hidden.select(1, 0),
            Pooling.Mean => SequenceClassifier.MeanPool(hidden, mask),
            _ => hidden,
        };
        if (Options.Normalize) output = nn.functional.normalize(output, p: 2, dim: -1);
        float[] values = output.to(float32).cpu().contiguous().data<float>().ToArray();

        var result = new float[rows.Length][][];
        for (int r = 0; r < rows.Length; r++)
        {
            if (Options.Pooling == Pooling.None)
            {
                int tokens = rows[r].InputIds.Length;
                int rowStart = r * batch.SequenceLength * width;
                result[r] = Enumerable.Range(0, tokens).Select(t => values.AsSpan(rowStart + t * width, width).ToArray()).ToArray();
            }
            else result[r] = [values.AsSpan(r * width, width).ToArray()];
        }
        return result;
    }


    private EncodedBatch Pad(EncodedText[] rows) =>
        EncodedBatch.Pad(rows.Select(r => (r.InputIds, r.TokenTypeIds, r.Length)).ToList(), tokenizer.PadTokenId);
}
