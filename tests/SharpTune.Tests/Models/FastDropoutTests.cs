using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

public sealed class FastDropoutTests
{
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(0.03)]
    public void Zeroes_the_given_share_and_scales_the_rest_like_nn_Dropout(double p)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(11);
        Tensor x = torch.rand(1000, 1001).add_(1.0.ToScalar()).to_type(ScalarType.BFloat16); // 1 … 2: none is zero before dropout
        Tensor y = FastDropout.Apply(x, p, training: true);
        Tensor dropped = y.eq(0.0.ToScalar());
        double share = dropped.to_type(ScalarType.Float64).mean().item<double>();
        // 1,001,000 Bernoulli draws: the share's standard deviation is √(p(1−p)/n) ≤ 5e-4.
        Assert.InRange(share, p - 0.003, p + 0.003);
        Tensor kept = y.masked_select(dropped.logical_not());
        // nn.Dropout's scaling: a multiply by 1 / (1 − p), computed here element by element and rounded to bfloat16.
        double scale = 1 / (1 - p);
        float[] before = x.masked_select(dropped.logical_not()).to_type(ScalarType.Float32).data<float>().ToArray();
        float[] after = kept.to_type(ScalarType.Float32).data<float>().ToArray();
        Assert.Equal(before.Length, after.Length);
        for (int i = 0; i < before.Length; i++) Assert.True(Math.Abs(after[i] - before[i] * scale) <= 0.0079 * before[i] * scale, $"{i}: {after[i]} vs {before[i] * scale}");
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
        // Neighbouring columns are not copies of each other (four uniforms come from one 64-bit draw).
        Tensor keep = first.ne(0.0.ToScalar()).to_type(ScalarType.Float32);
        double agreement = keep.narrow(1, 0, 256).eq(keep.narrow(1, 1, 256)).to_type(ScalarType.Float32).mean().item<float>();
        Assert.InRange(agreement, 0.58 - 0.03, 0.58 + 0.03); // independent: 0.7² + 0.3² = 0.58
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

        // float32 keeps libtorch's dropout: the same seed gives libtorch's own mask.
        Tensor plain = torch.ones(32, 33);
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
    }
}
