using SharpTune.Models;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Training;

/// <summary>The loss of each task, chosen once from the problem type (never inside a head).</summary>
public static class Losses
{
    /// <summary>
    /// Mean loss of a batch. Single-label: cross-entropy over the logits, or binary cross-entropy on a single
    /// logit when a two-label head emits one output (sigmoid in the loss, as BCEWithLogitsLoss).
    /// Multi-label: BCE with logits. Regression: MSE.
    /// </summary>
    public static Tensor Compute(ProblemType problem, Tensor logits, Tensor targets)
    {
        Tensor fp32 = logits.to_type(ScalarType.Float32);
        return problem switch
        {
            ProblemType.SingleLabelClassification when fp32.shape[1] == 1 =>
                functional.binary_cross_entropy_with_logits(fp32.squeeze(1), targets.to_type(ScalarType.Float32)),
            ProblemType.SingleLabelClassification => functional.cross_entropy(fp32, targets),
            ProblemType.MultiLabelClassification => functional.binary_cross_entropy_with_logits(fp32, targets.to_type(ScalarType.Float32)),
            ProblemType.Regression => functional.mse_loss(fp32, targets.to_type(ScalarType.Float32).view(fp32.shape)),
            _ => throw new ArgumentOutOfRangeException(nameof(problem)),
        };
    }

    /// <summary>
    /// Per-class probabilities [batch, labels]: softmax for single-label (a single logit → [1 − p, p]),
    /// sigmoid for multi-label, the raw value for regression.
    /// </summary>
    public static Tensor Probabilities(ProblemType problem, Tensor logits)
    {
        Tensor fp32 = logits.to_type(ScalarType.Float32);
        return problem switch
        {
            ProblemType.SingleLabelClassification when fp32.shape[1] == 1 => cat([1 - sigmoid(fp32), sigmoid(fp32)], 1),
            ProblemType.SingleLabelClassification => functional.softmax(fp32, 1),
            ProblemType.MultiLabelClassification => sigmoid(fp32),
            _ => fp32,
        };
    }
}
