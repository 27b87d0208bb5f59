using Microsoft.ML.OnnxRuntime;
using SharpTune.Export;
using SharpTune.Tests.Export;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpTune.Tests.Parity;

/// <summary>
/// The packaged all-MiniLM-L6-v2, exported by SharpTune and run in ONNX Runtime: last_hidden_state equal to SharpTune's
/// within 1e-4 on tokenised padded batches of two shapes, and to the original packaged export's on real tokens.
/// </summary>
[Collection(PackagedMiniLMCollection.Name)]
public sealed class MiniLMExportTests(PackagedMiniLMFixture fixture, ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    [Fact]
    public void Exported_minilm_matches_sharptune_and_the_packaged_export()
    {
        string path = Path.Combine(fixture.Root, "exported-minilm.onnx");
        var report = OnnxExporter.Export(fixture.Encoder.Model, path);
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], report.Inputs);
        using var session = new InferenceSession(path, new SessionOptions { IntraOpNumThreads = 1 });

        string[][] batches =
        [
            ["A man is eating food.", "Short."],
            ["The quick brown fox jumps over the lazy dog near the river bank.", "café 我爱 Привет", "Padding must not leak into real tokens."],
        ];
        double worstSharpTune = 0, worstPackaged = 0;
        foreach (string[] texts in batches)
        {
            var encoded = fixture.Encoder.Tokenizer.EncodeBatch(texts, null, 128);
            int rows = texts.Length, length = encoded.InputIds.Length / rows;
            var batch = new OnnxExportTests.Batch(encoded.InputIds, encoded.AttentionMask, encoded.TokenTypeIds, rows, length);
            float[] exported = OnnxExportTests.RunSession(session, batch, "last_hidden_state", out _);
            float[] packaged = OnnxExportTests.RunSession(fixture.Session, batch, "last_hidden_state", out _);

            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            long[] dims = [rows, length];
            var result = fixture.Encoder.Model.call(torch.tensor(batch.Ids, dims), torch.tensor(batch.Types, dims), torch.tensor(batch.Mask, dims));
            float[] expected = result.LastHiddenState.contiguous().data<float>().ToArray();
            int hidden = expected.Length / (rows * length);
            for (int i = 0; i < expected.Length; i++)
            {
                worstSharpTune = Math.Max(worstSharpTune, Math.Abs(expected[i] - exported[i]));
                if (batch.Mask[i / hidden] == 1) worstPackaged = Math.Max(worstPackaged, Math.Abs(packaged[i] - exported[i]));
            }
        }
        output.WriteLine($"MiniLM: max |Δ last_hidden_state| vs SharpTune {worstSharpTune:E2}, vs the packaged export (real tokens) {worstPackaged:E2}");
        Assert.True(worstSharpTune <= Tolerance, $"vs SharpTune: {worstSharpTune:E3}");
        Assert.True(worstPackaged <= Tolerance, $"vs the packaged export: {worstPackaged:E3}");
    }
}
