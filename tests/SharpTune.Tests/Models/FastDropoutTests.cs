using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

public sealed class FastDropoutTests
{
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Theory]
    [InlineData(0.1, ScalarType.BFloat16)]
    [InlineData(0.5, ScalarType.BFloat16)]
    [InlineData(0.03, ScalarType.BFloat16)]
    [InlineData(0.1, ScalarType.Float32)]
    [InlineData(0.7, ScalarType.Float32)]
    public void Zeroes_the_given_share_and_scales_the_rest_like_nn_Dropout(double p, ScalarType type)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(11);
        Tensor x = torch.rand(1000, 1001).add_(1.0.ToScalar()).to_type(type); // 1 … 2: none is zero before dropout
        Tensor y = FastDropout.Apply(x, p, training: true);
        Tensor dropped = y.eq(0.0.ToScalar());
        double share = dropped.to_type(ScalarType.Float64).mean().item<double>();
        // 1,001,000 Bernoulli draws: the share's standard deviation is √(p(1−p)/n) ≤ 5e-4.
        Assert.InRange(share, p - 0.003, p + 0.003);
        Tensor kept = y.masked_select(dropped.logical_not());
        // nn.Dropout's scaling: a multiply by 1 / (1 − p), computed here element by element and rounded to the type.
        double scale = 1 / (1 - p);
        double tolerance = type == ScalarType.BFloat16 ? 0.0079 : 1e-6; // bfloat16: the scale and the product each rounded (2⁻⁸ each)
        float[] before = x.masked_select(dropped.logical_not()).to_type(ScalarType.Float32).data<float>().ToArray();
        float[] after = kept.to_type(ScalarType.Float32).data<float>().ToArray();
        Assert.Equal(before.Length, after.Length);
        for (int i = 0; i < before.Length; i++) Assert.True(Math.Abs(after[i] - before[i] * scale) <= tolerance * before[i] * scale, $"{i}: {after[i]} vs {before[i] * scale}");
    }

    [Fact]
    public void Masks_follow_the_torch_seed_and_differ_between_calls()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(64, 257, ScalarType.BFloat16);
        torch.manual_seed(5);
        Tensor first = FastDropout.Apply(x, 0.3, true), second = FastDropout.Apply(x, 0.3, true);
        torch.manual_seed(5);
        Tensor again = FastDropout.Apply(x, 0.3, true);
        Assert.True(Same(first, again));
        Assert.False(Same(first, second));
        // Neighbouring columns are not copies of each other (two uniforms come from one 32-bit hash).
        Tensor keep = first.ne(0.0.ToScalar()).to_type(ScalarType.Float32);
        double agreement = keep.narrow(1, 0, 256).eq(keep.narrow(1, 1, 256)).to_type(ScalarType.Float32).mean().item<float>();
        Assert.InRange(agreement, 0.58 - 0.03, 0.58 + 0.03); // independent: 0.7² + 0.3² = 0.58
    }

    [Fact]
    public void The_vector_path_the_scalar_tail_and_the_parallel_blocks_write_one_stream()
    {
        using var scope = NewDisposeScope();
        // 37 elements: 32 in Vector256 lanes, 5 by the scalar tail; 48: all in lanes. 70,001: two parallel blocks
        // (65,536 each) and a tail; 140,000: three blocks. With one seed, each shorter mask is the longer one's prefix.
        foreach (var (shorter, longer) in new[] { (37, 48), (70_001, 140_000) })
            foreach (ScalarType type in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            {
                torch.manual_seed(21);
                Tensor a = FastDropout.ScaledKeepMask([shorter], 0.5, type, torch.CPU);
                torch.manual_seed(21);
                Tensor b = FastDropout.ScaledKeepMask([longer], 0.5, type, torch.CPU);
                Assert.True(Same(a, b.narrow(0, 0, shorter)), $"{type}: {shorter} against {longer}");
                double kept = a.ne(0.0.ToScalar()).to_type(ScalarType.Float64).mean().item<double>();
                Assert.InRange(kept, shorter < 100 ? 0.2 : 0.49, shorter < 100 ? 0.8 : 0.51);
                Assert.Equal(2.0, a.max().to_type(ScalarType.Float32).item<float>()); // 1 / (1 − 0.5), exact in both types
            }
    }

    [Fact]
    public void Evaluation_and_zero_probability_return_the_input_and_gradients_follow_the_mask()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.randn(8, 16);
        Assert.Same(x, FastDropout.Apply(x, 0.5, training: false));
        Assert.Same(x, FastDropout.Apply(x, 0, training: true));
        using var module = new FastDropout(0.5);
        module.eval();
        Assert.Same(x, module.call(x));

        Tensor leaf = torch.randn(8, 16).to_type(ScalarType.BFloat16).requires_grad_(true);
        Tensor y = FastDropout.Apply(leaf, 0.5, true);
        y.to_type(ScalarType.Float32).sum().backward();
        Tensor expected = y.detach().ne(0.0.ToScalar()).to_type(ScalarType.BFloat16).mul(2.0.ToScalar());
        Assert.True(Same(leaf.grad!, expected));

        // float64 keeps libtorch's dropout: the same seed gives libtorch's own mask.
        Tensor plain = torch.ones(32, 33, ScalarType.Float64);
        torch.manual_seed(9);
        Tensor ours = FastDropout.Apply(plain, 0.3, true);
        torch.manual_seed(9);
        Assert.True(Same(ours, nn.functional.dropout(plain, 0.3, true)));
        Assert.Throws<SharpTuneException>(() => new FastDropout(1.5));
    }

    [Fact]
    public void Attention_math_path_equals_libtorch_attention_when_nothing_is_dropped()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(3);
        Tensor q = torch.randn(2, 4, 7, 8).to_type(ScalarType.BFloat16), k = torch.randn(2, 4, 7, 8).to_type(ScalarType.BFloat16), v = torch.randn(2, 4, 7, 8).to_type(ScalarType.BFloat16);
        Tensor mask = torch.tensor(new[] { true, true, true, true, true, false, false, true, true, true, true, true, true, true }, 2, 1, 1, 7);
        Tensor expected = nn.functional.scaled_dot_product_attention(q.to_type(ScalarType.Float32), k.to_type(ScalarType.Float32), v.to_type(ScalarType.Float32), mask, 0.0);
        // p = 1e-9 rounds to a threshold of 0 sixty-five-thousandths: every probability is kept, scaled by 1/(1 − 1e-9).
        Tensor actual = Attention.ScaledDotProduct(q, k, v, mask, 1e-9, training: true).to_type(ScalarType.Float32);
        Assert.True(actual.allclose(expected, rtol: 0, atol: 2e-2), $"max difference {(actual - expected).abs().max().item<float>()}"); // bf16 output rounding
        Tensor dropped = Attention.ScaledDotProduct(q, k, v, mask, 0.5, training: true).to_type(ScalarType.Float32);
        Assert.False(dropped.allclose(expected, rtol: 0, atol: 0.1));
        Assert.Equal(ScalarType.BFloat16, Attention.ScaledDotProduct(q, k, v, mask, 0.1, true).dtype);

        // float32: the same math, to float32 rounding.
        Tensor actual32 = Attention.ScaledDotProduct(q.to_type(ScalarType.Float32), k.to_type(ScalarType.Float32), v.to_type(ScalarType.Float32), mask, 1e-9, training: true);
        Assert.True(actual32.allclose(expected, rtol: 0, atol: 1e-6), $"max difference {(actual32 - expected).abs().max().item<float>()}");
        Assert.Equal(ScalarType.Float32, actual32.dtype);
    }
}
