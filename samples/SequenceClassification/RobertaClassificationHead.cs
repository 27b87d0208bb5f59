#pragma warning disable IDE1006 // field names are checkpoint key segments: sharptune_head.dense.*, sharptune_head.out_proj.*
using System.Text.Json.Nodes;
using SharpTune.Heads;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Samples.SequenceClassification;

/// <summary>
/// Hugging Face's <c>RobertaClassificationHead</c>, line for line. The PyTorch original is in the comments;
/// the library has the same head built in (<see cref="ClassificationHead"/>): this copy shows how to write your own.
/// </summary>
public sealed class RobertaClassificationHead : Head
{
    private readonly Linear dense;      // self.dense = nn.Linear(config.hidden_size, config.hidden_size)
    private readonly Dropout dropout;   // self.dropout = nn.Dropout(classifier_dropout)
    private readonly Linear out_proj;   // self.out_proj = nn.Linear(config.hidden_size, config.num_labels)
    private readonly double dropoutProbability;

    /// <summary>def __init__(self, config): the hidden size and label count come from the encoder and the data.</summary>
    public RobertaClassificationHead(int hiddenSize, int numLabels, double dropoutProbability = 0.1)
        : base("classifier") // a custom head type: a run saves it under sharptune_head.* (the built-in ClassificationHead goes under classifier.*)
    {
        dense = Linear(hiddenSize, hiddenSize);
        dropout = Dropout(dropoutProbability);
        out_proj = Linear(hiddenSize, numLabels);
        this.dropoutProbability = dropoutProbability;
        Outputs = numLabels;
        RegisterComponents(); // what nn.Module.__setattr__ does for you in Python
    }

    /// <summary>x = features[:, 0, :] — the encoder hands the head the first token (&lt;s&gt; / [CLS]) only.</summary>
    public override HeadInput Input => HeadInput.FirstToken;

    /// <summary>config.num_labels.</summary>
    public override int Outputs { get; }

    /// <summary>What rebuilds this head when a saved run is loaded (see <see cref="HeadRegistry.Register"/>).</summary>
    public override JsonObject Options() => new() { ["dropout"] = dropoutProbability };

    /// <summary>def forward(self, features, **kwargs); <paramref name="features"/> is already features[:, 0, :].</summary>
    public override Tensor forward(Tensor features, Tensor? attentionMask)
    {
        Tensor x = dropout.call(features); // x = self.dropout(x)
        x = dense.call(x);                 // x = self.dense(x)
        x = tanh(x);                       // x = torch.tanh(x)
        x = dropout.call(x);               // x = self.dropout(x)
        return out_proj.call(x);           // x = self.out_proj(x); return x   (logits: softmax + cross-entropy live in the loss)
    }
}
