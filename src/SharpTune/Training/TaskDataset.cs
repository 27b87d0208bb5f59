using SharpTune.Models;

namespace SharpTune.Training;

/// <summary>
/// Tokenized examples with their targets, ready for batching: token ids and token types per example
/// (no padding; the attention mask is implied by the length), and one target per example.
/// </summary>
public sealed class TaskDataset
{
    /// <summary>Creates a dataset; every list must have one entry per example.</summary>
    public TaskDataset(ProblemType problem, int numLabels, IReadOnlyList<long[]> inputIds, IReadOnlyList<long[]> tokenTypeIds,
        IReadOnlyList<long>? labels = null, IReadOnlyList<float[]>? targets = null, IReadOnlyList<string>? labelNames = null)
    {
        if (inputIds.Count != tokenTypeIds.Count) throw new ArgumentException("inputIds and tokenTypeIds differ in length.");
        if (problem == ProblemType.SingleLabelClassification && labels?.Count != inputIds.Count)
            throw new ArgumentException("Single-label classification needs one label per example.");
        if (problem != ProblemType.SingleLabelClassification && targets?.Count != inputIds.Count)
            throw new ArgumentException($"{problem} needs one target vector per example.");
        for (int i = 0; i < inputIds.Count; i++)
            if (inputIds[i].Length == 0 || inputIds[i].Length != tokenTypeIds[i].Length)
                throw new ArgumentException($"Example {i}: token ids and token types must be non-empty and equally long.");
        Problem = problem;
        NumLabels = numLabels;
        InputIds = inputIds;
        TokenTypeIds = tokenTypeIds;
        Labels = labels;
        Targets = targets;
        LabelNames = labelNames ?? Enumerable.Range(0, numLabels).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        if (LabelNames.Count != numLabels) throw new ArgumentException($"{LabelNames.Count} label names for {numLabels} labels.");
    }

    /// <summary>Label names by id (for regression: the target's name).</summary>
    public IReadOnlyList<string> LabelNames { get; }

    /// <summary>What is learned.</summary>
    public ProblemType Problem { get; }
    /// <summary>Number of labels (1 for regression).</summary>
    public int NumLabels { get; }
    /// <summary>Token ids per example, [CLS] … [SEP] included.</summary>
    public IReadOnlyList<long[]> InputIds { get; }
    /// <summary>Token types per example.</summary>
    public IReadOnlyList<long[]> TokenTypeIds { get; }
    /// <summary>Single-label classification: the label id per example.</summary>
    public IReadOnlyList<long>? Labels { get; }
    /// <summary>Multi-label (multi-hot) or regression (one value) targets per example.</summary>
    public IReadOnlyList<float[]>? Targets { get; }
    /// <summary>Number of examples.</summary>
    public int Count => InputIds.Count;
    /// <summary>Token count of example <paramref name="index"/>.</summary>
    public int Length(int index) => InputIds[index].Length;
}
