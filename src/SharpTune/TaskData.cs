using SharpTune.Data;
using SharpTune.Training;

namespace SharpTune;

/// <summary>A front door with its data encoded for it: what one training run needs. Disposing it releases the model.</summary>
/// <param name="Model">The model (a <see cref="TextClassifier"/> or a <see cref="TokenTagger"/>).</param>
/// <param name="Train">The training data, encoded by <paramref name="Model"/>.</param>
/// <param name="Eval">The evaluation data, encoded likewise, or null.</param>
public sealed record PreparedTask(TaskModel Model, TaskDataset Train, TaskDataset? Eval) : IDisposable
{
    /// <inheritdoc />
    public void Dispose() => Model.Dispose();
}

/// <summary>
/// A task's training and evaluation data as read from files, before any model exists: it builds the front door that
/// reads it (<see cref="TextClassifier"/> for texts, <see cref="TokenTagger"/> for tagged sentences) and encodes the
/// data with that model's tokenizer. <c>sharptune train</c> prepares one run from it, a <see cref="StrategyComparison"/>
/// one per strategy and seed.
/// </summary>
public abstract class TaskData
{
    /// <summary>What is learned.</summary>
    public abstract TaskType Task { get; }
    /// <summary>The labels (tags for token classification; the target's name for regression).</summary>
    public abstract LabelSet Labels { get; }
    /// <summary>The head a new model gets when none is named: mean pooling for texts, the per-token head for tags.</summary>
    public abstract string DefaultHead { get; }
    /// <summary>What one training or evaluation item is, in words: "examples" (texts) or "sentences".</summary>
    public abstract string Unit { get; }
    /// <summary>Training items (texts or sentences).</summary>
    public abstract int TrainCount { get; }
    /// <summary>Evaluation items, or null without evaluation data.</summary>
    public abstract int? EvalCount { get; }

    /// <summary>
    /// Builds a new model on a pretrained encoder (null: the packaged all-MiniLM-L6-v2) with <paramref name="head"/> and
    /// encodes the data for it.
    /// </summary>
    public PreparedTask Prepare(string? modelDirectory, string head, int maxLength, int seed) => Encode(Create(modelDirectory, head, maxLength, seed));

    /// <summary>Encodes the data for <paramref name="model"/> (e.g. a saved run to continue), which it takes over: the model is disposed when encoding fails.</summary>
    public PreparedTask Encode(TaskModel model)
    {
        try
        {
            return new PreparedTask(model, EncodeTrain(model), EncodeEval(model));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checks that evaluating this data computes <paramref name="metric"/>: it is one of the task's metrics, and an entity
    /// score needs tags with a B-/I- scheme (POS tags have none). Checked before training, not at its first evaluation.
    /// </summary>
    /// <exception cref="SharpTuneException">It is not computed; the message names <paramref name="option"/> and what is.</exception>
    public void CheckMetric(string metric, string option = "--metric")
    {
        if (!Task.Metrics.Contains(metric))
            throw new SharpTuneException($"{option} '{metric}' is not computed for the {Task.Name} task; allowed: {string.Join(", ", Task.Metrics)}.");
        if (metric is MetricNames.EntityF1 or MetricNames.EntityPrecision or MetricNames.EntityRecall && EntityMetrics.DetectScheme(Labels.Names) is null)
            throw new SharpTuneException($"{option} '{metric}': the tags ({string.Join(", ", Labels.Names.Take(10))}{(Labels.Count > 10 ? ", …" : "")}) " +
                "have no B-/I- scheme, so there are no entities to score; use token_accuracy or macro_f1.");
    }

    /// <summary>A new model for this data.</summary>
    protected abstract TaskModel Create(string? modelDirectory, string head, int maxLength, int seed);
    /// <summary>The training data encoded by <paramref name="model"/>.</summary>
    protected abstract TaskDataset EncodeTrain(TaskModel model);
    /// <summary>The evaluation data encoded by <paramref name="model"/>, or null.</summary>
    protected abstract TaskDataset? EncodeEval(TaskModel model);
}

/// <summary>Texts with labels (single-label, multi-label) or targets (regression), read by a <see cref="TextClassifier"/>.</summary>
/// <param name="train">Training examples.</param>
/// <param name="eval">Evaluation examples, or null.</param>
/// <param name="labels">The labels (regression: one name, the target's).</param>
/// <param name="task">A sequence task (not <see cref="TaskType.Token"/>).</param>
/// <param name="trainSource">Names the training data in errors (an unknown label is <c>source:line</c>).</param>
/// <param name="evalSource">Names the evaluation data in errors.</param>
public sealed class TextTaskData(IReadOnlyList<TextExample> train, IReadOnlyList<TextExample>? eval, LabelSet labels, TaskType task,
    string trainSource = "train", string evalSource = "eval") : TaskData
{
    private readonly TaskType task = task.PerToken
        ? throw new ArgumentException("Texts are read for sequence tasks; tagged sentences are TokenTaskData.", nameof(task)) : task;

    /// <inheritdoc />
    public override TaskType Task => task;
    /// <inheritdoc />
    public override LabelSet Labels { get; } = labels;
    /// <inheritdoc />
    public override string DefaultHead => "mean";
    /// <inheritdoc />
    public override string Unit => "examples";
    /// <inheritdoc />
    public override int TrainCount => train.Count;
    /// <inheritdoc />
    public override int? EvalCount => eval?.Count;

    /// <inheritdoc />
    protected override TaskModel Create(string? modelDirectory, string head, int maxLength, int seed) =>
        TextClassifier.Create(modelDirectory, head, Labels, task, maxLength, seed);

    /// <inheritdoc />
    protected override TaskDataset EncodeTrain(TaskModel model) => AsClassifier(model).Encode(train, trainSource);

    /// <inheritdoc />
    protected override TaskDataset? EncodeEval(TaskModel model) => eval is null ? null : AsClassifier(model).Encode(eval, evalSource);

    private static TextClassifier AsClassifier(TaskModel model) => model as TextClassifier
        ?? throw new SharpTuneException($"The data are texts; the model is a {model.GetType().Name} (task {model.Task.Name}).");
}

/// <summary>Tagged sentences (CoNLL, JSON lines with tokens and tags), read by a <see cref="TokenTagger"/>.</summary>
/// <param name="train">Training sentences.</param>
/// <param name="eval">Evaluation sentences, or null.</param>
/// <param name="tags">The tag set (e.g. <see cref="TokenDataset.TagSet"/> of the training sentences).</param>
/// <param name="stride">Tokens of context shared by consecutive windows of a long sentence; null: the tagger's default.</param>
/// <param name="trainSource">Names the training data in errors (an unknown tag is <c>source:line</c>).</param>
/// <param name="evalSource">Names the evaluation data in errors.</param>
public sealed class TokenTaskData(IReadOnlyList<TaggedSentence> train, IReadOnlyList<TaggedSentence>? eval, LabelSet tags, int? stride = null,
    string trainSource = "train", string evalSource = "eval") : TaskData
{
    /// <inheritdoc />
    public override TaskType Task => TaskType.Token;
    /// <inheritdoc />
    public override LabelSet Labels { get; } = tags;
    /// <inheritdoc />
    public override string DefaultHead => "token";
    /// <inheritdoc />
    public override string Unit => "sentences";
    /// <inheritdoc />
    public override int TrainCount => train.Count;
    /// <inheritdoc />
    public override int? EvalCount => eval?.Count;
    /// <summary>The window overlap new taggers get (null: their default).</summary>
    public int? Stride => stride;

    /// <inheritdoc />
    protected override TaskModel Create(string? modelDirectory, string head, int maxLength, int seed) =>
        TokenTagger.Create(modelDirectory, head, Labels, maxLength, seed, stride);

    /// <inheritdoc />
    protected override TaskDataset EncodeTrain(TaskModel model) => AsTagger(model).Encode(train, trainSource);

    /// <inheritdoc />
    protected override TaskDataset? EncodeEval(TaskModel model) => eval is null ? null : AsTagger(model).Encode(eval, evalSource);

    private static TokenTagger AsTagger(TaskModel model) => model as TokenTagger
        ?? throw new SharpTuneException($"The data are tagged sentences; the model classifies whole texts (task {model.Task.Name}).");
}
