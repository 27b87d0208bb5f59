using Microsoft.ML.OnnxRuntime;
using SharpTune.Tokenization;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpTune.Tests.Parity;

/// <summary>
/// SharpTune's BertModel on the imported all-MiniLM-L6-v2 against ONNX Runtime on the packaged export it was
/// imported from, fed the same ids (from our BertTokenizer). Compared on real tokens only.
/// </summary>
[Collection(PackagedMiniLMCollection.Name)]
public class OnnxRuntimeParityTests(PackagedMiniLMFixture fixture, ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    private static readonly string LongText = string.Join(' ', Enumerable.Range(0, 60).Select(i =>
        $"Sentence {i} talks about transformers, tokenizers and the weather in city number {i}."));

    // name → (text, pair, max length). Names keep the theory cases readable in the test runner.
    private static readonly Dictionary<string, (string Text, string? Pair, int MaxLength)> Cases = new()
    {
        ["short"] = ("Hello world", null, 128),
        ["sentence"] = ("A man is eating food.", null, 128),
        ["long truncated to 128"] = (LongText, null, 128),
        ["long, 300 tokens"] = (string.Join(' ', Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 30)), null, 512),
        ["pair"] = ("How old are you?", "I am six years old.", 128),
        ["pair truncated longest-first"] = (LongText, "A short second segment that survives truncation.", 128),
        ["accents"] = ("café naïve résumé Zürich", null, 128),
        ["chinese"] = ("我爱自然语言处理，今天天气很好。", null, 128),
        ["japanese"] = ("東京は日本の首都です", null, 128),
        ["russian"] = ("Привет, как дела? Всё хорошо.", null, 128),
        ["arabic"] = ("مرحبا بالعالم، كيف حالك؟", null, 128),
        ["greek"] = ("Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", null, 128),
        ["emoji"] = ("I love pizza 🍕🔥😀 so much 👍🏽", null, 128),
        ["punctuation run"] = ("!!!???$$$", null, 128),
        ["empty"] = ("", null, 128),
        ["mask token"] = ("[MASK]", null, 128),
        ["mask in a sentence"] = ("The capital of France is [MASK].", null, 128),
        ["numbers"] = ("3.14159 2024-01-01 $1,000,000 50% 1e-12", null, 128),
        ["mixed case"] = ("ThIs Is MiXeD CaSe AND SHOUTING", null, 128),
        ["code"] = ("for (int i = 0; i < n; i++) { x += y[i] * 2; }", null, 128),
        ["url and email"] = ("Contact john.doe@example.com or https://example.org/path?q=1&r=2", null, 128),
        ["whitespace and controls"] = ("  \t lots   of \n whitespace \r\n here\u0000 ", null, 128),
        ["single character"] = ("a", null, 128),
        ["unknown symbols"] = ("\u2603 \u2764 \u00bf \u2211 \u222b", "pair with symbols \u00a7\u00b6", 128),
    };

    public static IEnumerable<object[]> CaseNames => Cases.Keys.Select(name => new object[] { name });

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Last_hidden_state_and_pooler_match_onnx_runtime(string name)
    {
        var (text, pair, maxLength) = Cases[name];
        EncodedText encoded = fixture.Encoder.Tokenizer.Encode(text, pair, maxLength);
        if (name == "long truncated to 128") Assert.Equal(128, encoded.InputIds.Length);
        if (name == "long, 300 tokens") Assert.True(encoded.InputIds.Length >= 256, $"{encoded.InputIds.Length} tokens");
        if (pair is not null) Assert.Contains(1L, encoded.TokenTypeIds);

        var batch = fixture.Encoder.Tokenizer.EncodeBatch([text], pair is null ? null : [pair], maxLength);
        var (hiddenDiff, pooledDiff) = Compare(batch);
        output.WriteLine($"{name}: {encoded.InputIds.Length} tokens, max |Δ| last_hidden_state {hiddenDiff:E2}, pooled {pooledDiff:E2}");
        Assert.True(hiddenDiff <= Tolerance, $"{name}: last_hidden_state differs by {hiddenDiff:E3}");
        Assert.True(pooledDiff <= Tolerance, $"{name}: pooled output differs by {pooledDiff:E3}");
    }

    [Fact]
    public void Padded_batch_matches_onnx_runtime_row_by_row_on_real_tokens()
    {
        string[] texts =
        [
            "Short.", "A somewhat longer sentence with more tokens in it.", "", "café 我爱 Привет 🍕",
            "Padding must not leak into the real tokens of any row, whatever the row's length is.", "[MASK]",
        ];
        string?[] pairs = [null, "with a pair", null, null, null, "segment b"];
        var batch = fixture.Encoder.Tokenizer.EncodeBatch(texts, pairs, 128);
        Assert.True(batch.AttentionMask.Contains(0L)); // there is padding

        var (hiddenDiff, pooledDiff) = Compare(batch);
        output.WriteLine($"padded batch of {batch.BatchSize}×{batch.SequenceLength}: max |Δ| last_hidden_state {hiddenDiff:E2}, pooled {pooledDiff:E2}");
        Assert.True(hiddenDiff <= Tolerance, $"last_hidden_state differs by {hiddenDiff:E3}");
        Assert.True(pooledDiff <= Tolerance, $"pooled output differs by {pooledDiff:E3}");

        // And each padded row equals the same text run alone (SharpTune against itself, no padding).
        var (alone, _) = RunSharpTune(fixture.Encoder.Tokenizer.EncodeBatch([texts[1]], [pairs[1]], 128));
        var (together, _) = RunSharpTune(batch);
        int width = 384, tokens = alone.Length / width;
        double rowDiff = 0;
        for (int i = 0; i < tokens * width; i++) rowDiff = Math.Max(rowDiff, Math.Abs(alone[i] - together[batch.SequenceLength * width + i]));
        Assert.True(rowDiff <= Tolerance, $"row 1 padded vs alone differs by {rowDiff:E3}");
    }

    // Max abs difference over real tokens of last_hidden_state, and over the pooled output.
    private (double Hidden, double Pooled) Compare(EncodedBatch batch)
    {
        var (ortHidden, ortPooled) = RunOnnxRuntime(batch);
        var (ourHidden, ourPooled) = RunSharpTune(batch);
        Assert.Equal(ortHidden.Length, ourHidden.Length);
        int width = ourPooled.Length / batch.BatchSize;
        double hidden = 0;
        for (int row = 0; row < batch.BatchSize; row++)
            for (int t = 0; t < batch.SequenceLength; t++)
            {
                if (batch.AttentionMask[row * batch.SequenceLength + t] == 0) continue;
                int start = (row * batch.SequenceLength + t) * width;
                for (int h = 0; h < width; h++) hidden = Math.Max(hidden, Math.Abs(ortHidden[start + h] - ourHidden[start + h]));
            }
        double pooled = ortPooled.Zip(ourPooled, (a, b) => (double)Math.Abs(a - b)).Max();
        return (hidden, pooled);
    }

    private (float[] Hidden, float[] Pooled) RunOnnxRuntime(EncodedBatch batch)
    {
        long[] shape = [batch.BatchSize, batch.SequenceLength];
        using var ids = OrtValue.CreateTensorValueFromMemory(batch.InputIds, shape);
        using var mask = OrtValue.CreateTensorValueFromMemory(batch.AttentionMask, shape);
        using var types = OrtValue.CreateTensorValueFromMemory(batch.TokenTypeIds, shape);
        var inputs = new Dictionary<string, OrtValue> { ["input_ids"] = ids, ["attention_mask"] = mask, ["token_type_ids"] = types };
        using var runOptions = new RunOptions();
        using var results = fixture.Session.Run(runOptions, inputs, ["last_hidden_state", "924"]);
        return (results[0].GetTensorDataAsSpan<float>().ToArray(), results[1].GetTensorDataAsSpan<float>().ToArray());
    }

    private (float[] Hidden, float[] Pooled) RunSharpTune(EncodedBatch batch)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (ids, types, mask) = batch.ToTensors();
        var result = fixture.Encoder.Model.call(ids, types, mask);
        return (result.LastHiddenState.data<float>().ToArray(), result.PooledOutput!.data<float>().ToArray());
    }
}
