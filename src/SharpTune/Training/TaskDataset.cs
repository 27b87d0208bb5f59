namespace SharpTune.Training;

/// <summary>
/// Tokenized examples with their targets, ready for batching: token ids and token types per example (no padding; the
/// attention mask is implied by the length), and the targets of its <see cref="Task"/>: a label per example
/// (single-label), a vector per example (multi-label, regression), or a label per token plus the sentence each example
/// (window) belongs to (token classification). The task reads its own targets; nothing else looks at which exist.
/// </summary>
public sealed class TaskDataset
{
    /// <summary>Creates a dataset; every list must have one entry per example, and <paramref name="task"/>'s targets must be given.</summary>
    /// <param name="task">What is learned.</param>
    /// <param name="numLabels">Number of labels (1 for regression).</param>
    /// <param name="inputIds">Token ids per example, special tokens included.</param>
    /// <param name="tokenTypeIds">Token types per example.</param>
    /// <param name="labels">Single-label: the label id per example.</param>
    /// <param name="targets">Multi-label (multi-hot) or regression (one value) targets per example.</param>
    /// <param name="labelNames">Label names by id; default "0", "1", ….</param>
    /// <param name="tokenLabels">Token classification: a label id per token, <see cref="TokenWindows.IgnoreIndex"/> where it does not count.</param>
    /// <param name="sentences">Token classification: the sentence of each example (window), non-decreasing.</param>
    public TaskDataset(TaskType task, int numLabels, IReadOnlyList<long[]> inputIds, IReadOnlyList<long[]> tokenTypeIds,
        IReadOnlyList<long>? labels = null, IReadOnlyList<float[]>? targets = null, IReadOnlyList<string>? labelNames = null,
        IReadOnlyList<long[]>? tokenLabels = null, IReadOnlyList<int>? sentences = null)
    {
        if (inputIds.Count != tokenTypeIds.Count) throw new ArgumentException("inputIds and tokenTypeIds differ in length.");
        foreach (var (name, count) in new[] { ("labels", labels?.Count), ("targets", targets?.Count), ("tokenLabels", tokenLabels?.Count), ("sentences", sentences?.Count) })
            if (count is { } n && n != inputIds.Count) throw new ArgumentException($"{name} has {n} entries for {inputIds.Count} examples.");
        for (int i = 0; i < inputIds.Count; i++)
            if (inputIds[i].Length == 0 || inputIds[i].Length != tokenTypeIds[i].Length)
                throw new ArgumentException($"Example {i}: token ids and token types must be non-empty and equally long.");
        Task = task;
        NumLabels = numLabels;
        InputIds = inputIds;
        TokenTypeIds = tokenTypeIds;
        Labels = labels;
        Targets = targets;
        TokenLabels = tokenLabels;
        Sentences = sentences;
        LabelNames = labelNames ?? Enumerable.Range(0, numLabels).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        if (LabelNames.Count != numLabels) throw new ArgumentException($"{LabelNames.Count} label names for {numLabels} labels.");
        if (labels is not null || targets is not null || tokenLabels is not null) task.Check(this);
    }

    /// <summary>Inputs without targets, for prediction (<paramref name="sentences"/>: token tasks' sentence of each window).</summary>
    public static TaskDataset Unlabelled(TaskType task, int numLabels, IReadOnlyList<long[]> inputIds, IReadOnlyList<long[]> tokenTypeIds,
        IReadOnlyList<string>? labelNames = null, IReadOnlyList<int>? sentences = null) =>
        new(task, numLabels, inputIds, tokenTypeIds, labelNames: labelNames, sentences: sentences);

    /// <summary>True when the examples have targets (training and evaluation data); false for prediction input.</summary>
    public bool IsLabelled => Labels is not null || Targets is not null || TokenLabels is not null;

    /// <summary>Label names by id (for regression: the target's name).</summary>
    public IReadOnlyList<string> LabelNames { get; }
    /// <summary>What is learned.</summary>
    public TaskType Task { get; }
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
    /// <summary>Token classification: a label id per token (<see cref="TokenWindows.IgnoreIndex"/> where it does not count).</summary>
    public IReadOnlyList<long[]>? TokenLabels { get; }
    /// <summary>Token classification: the sentence each example (window) belongs to.</summary>
    public IReadOnlyList<int>? Sentences { get; }
    /// <summary>Number of examples.</summary>
    public int Count => InputIds.Count;
    /// <summary>Token count of example <paramref name="index"/>.</summary>
    public int Length(int index) => InputIds[index].Length;
}
