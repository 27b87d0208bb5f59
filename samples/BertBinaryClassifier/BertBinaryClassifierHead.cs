using SharpTune.Heads;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Samples.BertBinaryClassifier;

/// <summary>
/// The top of the tutorial's <c>BertBinaryClassifier(nn.Module)</c>: pooled output → dropout → linear(hidden → 1).
/// <c>self.bert</c> is the library's encoder, so the head only holds what sits on top of it.
/// </summary>
public sealed class BertBinaryClassifierHead : Head
{
    private readonly Dropout dropout; // self.dropout = nn.Dropout(dropout)
    private readonly Linear linear;   // self.linear = nn.Linear(768, 1)   (768 = BERT-base; MiniLM has 384)

    // self.sigmoid = nn.Sigmoid() has no counterpart here, on purpose. The tutorial trains sigmoid → nn.BCELoss;
    // the library trains the raw logit with BCE-with-logits (nn.BCEWithLogitsLoss): log(sigmoid(z)) computed in
    // one step as -softplus(-z) never rounds sigmoid(z) to exactly 0 or 1, so the loss never becomes log(0) = -inf
    // and the gradient does not vanish for confident wrong answers. Prediction applies the sigmoid: P(spam) = sigmoid(z).

    /// <summary>def __init__(self, dropout=0.1).</summary>
    public BertBinaryClassifierHead(int hiddenSize, double dropoutProbability = 0.1) : base("classifier")
    {
        dropout = Dropout(dropoutProbability);
        linear = Linear(hiddenSize, 1);
        RegisterComponents(); // what nn.Module.__setattr__ does for you in Python
    }

    /// <summary>_, pooled_output = self.bert(tokens, attention_mask=masks): BERT's pooled output, tanh(dense([CLS])).</summary>
    public override HeadInput Input => HeadInput.Pooled;

    /// <summary>One logit: with two labels the library reads it as the logit of the second label (spam).</summary>
    public override int Outputs => 1;

    /// <summary>def forward(self, tokens, masks=None), from the pooled output on.</summary>
    public override Tensor forward(Tensor pooledOutput, Tensor? attentionMask)
    {
        Tensor dropoutOutput = dropout.call(pooledOutput); // dropout_output = self.dropout(pooled_output)
        return linear.call(dropoutOutput);                  // linear_output = self.linear(dropout_output); the sigmoid is in the loss
    }
}
