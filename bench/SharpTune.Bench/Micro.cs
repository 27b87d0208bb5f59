using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

/// <summary>Dropout and attention-with-dropout: libtorch's against SharpTune's, forward + backward, at MiniLM's training shapes.</summary>
internal static class Micro
{
    public static List<(string Name, double LibTorch, double SharpTune)> Run(int runs)
    {
        var rows = new List<(string, double, double)>();
        using var keyMask = torch.ones(32, 1, 1, 128, ScalarType.Bool);
        foreach (var type in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var hidden = torch.randn(32, 128, 384).to_type(type).requires_grad_(true);
            Tensor[] qkv = Enumerable.Range(0, 3).Select(_ => torch.randn(32, 12, 128, 32).to_type(type).requires_grad_(true)).ToArray();
            Action Backward(Func<Tensor> forward) => () =>
            {
                using var scope = NewDisposeScope();
                forward().to_type(ScalarType.Float32).sum().backward();
            };
            double[] t = Bench.Interleaved(runs,
                Backward(() => nn.functional.dropout(hidden, 0.1, true)),
                Backward(() => FastDropout.Apply(hidden, 0.1, true)),
                Backward(() => nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], keyMask, 0.1)),
                Backward(() => Attention.ScaledDotProduct(qkv[0], qkv[1], qkv[2], keyMask, 0.1, true)));
            string name = Bench.Name(type);
            rows.Add(($"dropout 0.1 on [32,128,384] {name}, forward + backward", t[0] * 1000, t[1] * 1000));
            rows.Add(($"attention with dropout 0.1, [32,12,128,32] {name}, forward + backward", t[2] * 1000, t[3] * 1000));
            foreach (var x in qkv) x.Dispose();
        }
        foreach (var (name, a, b) in rows) Console.WriteLine($"{name,-64} libtorch {a,8:F1} ms  SharpTune {b,8:F1} ms");
        return rows;
    }
}
