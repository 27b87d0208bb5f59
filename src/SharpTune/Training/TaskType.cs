using System.Globalization;
using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Native;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpTune.Training;

/// <summary>
/// What the model learns, in one object: how a dataset's targets become a batch tensor, the loss, the probabilities,
/// the metrics (and which of them exist), the Hugging Face <c>problem_type</c> and task class, and whether predictions
/// are per text or per token. The trainer, batcher and evaluator call it and never switch on the task.
/// </summary>
/// <remarks>
/// Four tasks exist: <see cref="SingleLabel"/>, <see cref="MultiLabel"/>, <see cref="Regression"/> (sequence
/// classification, as HF's <c>problem_type</c> names them) and <see cref="Token"/> (one label per token).
/// </remarks>
public abstract class TaskType
{
    /// <summary>One label per text: softmax + cross-entropy (a single logit for two labels: sigmoid + binary cross-entropy).</summary>
    public static readonly TaskType SingleLabel = new SingleLabelTask();
    /// <summary>Any number of labels per text: sigmoid per label + binary cross-entropy.</summary>
    public static readonly TaskType MultiLabel = new MultiLabelTask();
    /// <summary>One real value per text: mean squared error.</summary>
    public static readonly TaskType Regression = new RegressionTask();
    /// <summary>One label per word (NER, POS): cross-entropy on each word's first sub-token, others ignored.</summary>
    public static readonly TaskType Token = new TokenTask();

    /// <summary>Every task, in the order the CLI lists them.</summary>
    public static IReadOnlyList<TaskType> All { get; } = [SingleLabel, MultiLabel, Regression, Token];

    /// <summary>The name the CLI (<c>--task</c>) and sharptune.json use: single, multi, regression, token.</summary>
    public abstract string Name { get; }

    /// <summary>HF's <c>config.problem_type</c>, or null where HF has none (token classification).</summary>
    public abstract string? ProblemType { get; }

    /// <summary>True when the model predicts per token ([batch, sequence, labels]) rather than per text.</summary>
    public virtual bool PerToken => false;

    /// <summary>The metrics this task's evaluation computes (<see cref="MetricNames"/>; per-class F1 aside), in table order, <c>loss</c> last.</summary>
    public abstract IReadOnlyList<string> Metrics { get; }

    /// <summary>
    /// The default metric for ranking runs: macro-F1 for classification (it weighs a rare class like a common one, where
    /// accuracy rewards always answering the majority class), Pearson for regression, token accuracy for tagging.
    /// </summary>
    public abstract string DefaultMetric { get; }

    /// <summary>Logits per example (per token for token tasks) for <paramref name="labels"/> labels.</summary>
    public virtual int Outputs(int labels) => labels;

    /// <summary>The HF class whose head computes this task on <paramref name="architecture"/>.</summary>
    public virtual string HuggingFaceClass(Architecture architecture) => architecture.SequenceClassificationClass;

    /// <summary>That class's head, for <paramref name="encoder"/> with <paramref name="outputs"/> logits.</summary>
    public virtual Head HuggingFaceHead(Encoder encoder, int outputs) => encoder.Architecture.SequenceHead(encoder.Config, outputs);

    /// <summary>Checks that <paramref name="head"/> predicts what this task needs (per text or per token).</summary>
    /// <exception cref="SharpTuneException">It does not; the message says which head fits.</exception>
    public void CheckHead(Head head)
    {
        if (head.PerToken == PerToken) return;
        throw new SharpTuneException(PerToken
            ? $"The {Name} task needs a head with one output per token (token, hf, or a custom head with PerToken); {head.GetType().Name} has one per text."
            : $"{head.GetType().Name} gives one output per token, a token-classification head; the {Name} task classifies whole texts (use --task token to tag tokens).");
    }

    /// <summary>The targets of the examples <paramref name="indices"/> of <paramref name="data"/> as one tensor (per-token targets padded with the ignore index).</summary>
    public abstract Tensor Targets(TaskDataset data, int[] indices);

    /// <summary>Mean loss of a batch (computed in float32).</summary>
    public abstract Tensor Loss(Tensor logits, Tensor targets);

    /// <summary>Per-label probabilities (regression: the value), same leading shape as the logits, float32.</summary>
    public abstract Tensor Probabilities(Tensor logits);

    /// <summary>The metrics of <paramref name="data"/> given each example's probabilities (<see cref="Evaluator"/>'s output).</summary>
    public abstract EvaluationMetrics Evaluate(TaskDataset data, float[][] probabilities);

    /// <summary>
    /// The targets of text examples: a label id each (single-label) or a vector each (multi-hot, or the regression value).
    /// <paramref name="where"/> names an example's file and line in errors (an unknown label, a missing value).
    /// </summary>
    public abstract (IReadOnlyList<long>? Labels, IReadOnlyList<float[]>? Targets) TextTargets(IReadOnlyList<TextExample> examples, LabelSet labels,
        Func<TextExample, string> where);

    /// <summary>The predicted label of one example (one token for token tasks) from its probabilities: arg-max; multi-label: the labels ≥ 0.5 joined by ';'; regression: the value.</summary>
    public virtual string Decide(ReadOnlySpan<float> probabilities, IReadOnlyList<string> labels) => labels[Training.Metrics.ArgMax(probabilities)];

    private static int LabelId(LabelSet labels, TextExample example, string label, Func<TextExample, string> where) => labels.TryGetId(label, out int id) ? id
        : throw new SharpTuneException($"{where(example)}: label '{label}' is not one the model knows ({string.Join(", ", labels.Names)}).");

    /// <summary>Checks that <paramref name="data"/> holds this task's targets; the message names what is missing.</summary>
    internal abstract void Check(TaskDataset data);

    /// <summary>The task named <paramref name="name"/> (single, multi, regression, token); <paramref name="property"/> names the option in the error.</summary>
    public static TaskType Parse(string name, string property = "--task") =>
        All.FirstOrDefault(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new SharpTuneException($"{property} must be {string.Join(", ", All.Select(t => t.Name))}; got '{name}'.");

    /// <summary>The sequence task of an HF <c>problem_type</c> (null: single-label, as HF defaults for integer labels); <paramref name="source"/> names the file.</summary>
    public static TaskType FromProblemType(string? problemType, string source) => problemType is null ? SingleLabel
        : All.FirstOrDefault(t => t.ProblemType == problemType)
          ?? throw new SharpTuneException($"{source}: problem_type '{problemType}' is not one of {string.Join(", ", All.Select(t => t.ProblemType).OfType<string>())}.");

    /// <inheritdoc />
    public override string ToString() => Name;

    private static Tensor Float(Tensor t) => t.to_type(ScalarType.Float32);

    private sealed class SingleLabelTask : TaskType
    {
        public override string Name => "single";
        public override string ProblemType => "single_label_classification";
        public override IReadOnlyList<string> Metrics { get; } = [MetricNames.Accuracy, MetricNames.MacroF1, MetricNames.Mcc, MetricNames.Loss];
        public override string DefaultMetric => MetricNames.MacroF1;

        public override Tensor Targets(TaskDataset data, int[] indices) => tensor(indices.Select(i => data.Labels![i]).ToArray());

        public override (IReadOnlyList<long>? Labels, IReadOnlyList<float[]>? Targets) TextTargets(IReadOnlyList<TextExample> examples, LabelSet labels,
            Func<TextExample, string> where) => (examples.Select(e => (long)LabelId(labels, e, e.Label, where)).ToList(), null);

        // A two-label head with one logit is BCEWithLogits on it; otherwise cross-entropy.
        public override Tensor Loss(Tensor logits, Tensor targets) => logits.shape[1] == 1
            ? functional.binary_cross_entropy_with_logits(Float(logits).squeeze(1), Float(targets))
            : functional.cross_entropy(Float(logits), targets);

        public override Tensor Probabilities(Tensor logits)
        {
            Tensor fp32 = Float(logits);
            if (fp32.shape[1] != 1) return functional.softmax(fp32, 1);
            Tensor positive = sigmoid(fp32);
            return cat([positive.neg().add(Scalars.One, Scalars.One), positive], 1); // 1 − p, p
        }

        public override EvaluationMetrics Evaluate(TaskDataset data, float[][] probabilities)
        {
            int[] gold = data.Labels!.Select(l => (int)l).ToArray();
            int[] predicted = probabilities.Select(p => Training.Metrics.ArgMax(p)).ToArray();
            return Training.Metrics.Classification(gold, predicted, data.LabelNames);
        }

        internal override void Check(TaskDataset data)
        {
            if (data.Labels is null) throw new ArgumentException("Single-label classification needs one label per example.");
        }
    }

    private sealed class MultiLabelTask : TaskType
    {
        public override string Name => "multi";
        public override string ProblemType => "multi_label_classification";
        public override IReadOnlyList<string> Metrics { get; } = [MetricNames.MacroF1, MetricNames.MicroF1, MetricNames.SubsetAccuracy, MetricNames.Loss];
        public override string DefaultMetric => MetricNames.MacroF1;

        public override Tensor Targets(TaskDataset data, int[] indices) =>
            tensor(indices.SelectMany(i => data.Targets![i]).ToArray(), indices.Length, data.NumLabels);

        public override (IReadOnlyList<long>? Labels, IReadOnlyList<float[]>? Targets) TextTargets(IReadOnlyList<TextExample> examples, LabelSet labels,
            Func<TextExample, string> where) => (null, examples.Select(e =>
            {
                var row = new float[labels.Count];
                foreach (string label in e.Labels) row[LabelId(labels, e, label, where)] = 1;
                return row;
            }).ToList());

        public override string Decide(ReadOnlySpan<float> probabilities, IReadOnlyList<string> labels)
        {
            var chosen = new List<string>();
            for (int i = 0; i < probabilities.Length; i++) if (probabilities[i] >= 0.5f) chosen.Add(labels[i]);
            return string.Join(TextDataset.MultiLabelSeparator, chosen);
        }

        public override Tensor Loss(Tensor logits, Tensor targets) => functional.binary_cross_entropy_with_logits(Float(logits), Float(targets));

        public override Tensor Probabilities(Tensor logits) => sigmoid(Float(logits));

        public override EvaluationMetrics Evaluate(TaskDataset data, float[][] probabilities) =>
            Training.Metrics.MultiLabel(data.Targets!.SelectMany(t => t).ToArray(), probabilities.SelectMany(p => p).ToArray(), data.LabelNames);

        internal override void Check(TaskDataset data)
        {
            if (data.Targets is null || data.Targets.Any(t => t.Length != data.NumLabels))
                throw new ArgumentException($"Multi-label classification needs one multi-hot vector of {data.NumLabels} per example.");
        }
    }

    private sealed class RegressionTask : TaskType
    {
        public override string Name => "regression";
        public override string ProblemType => "regression";
        public override IReadOnlyList<string> Metrics { get; } = [MetricNames.Pearson, MetricNames.Spearman, MetricNames.Mse, MetricNames.Loss];
        public override string DefaultMetric => MetricNames.Pearson;
        public override int Outputs(int labels) => 1;

        public override Tensor Targets(TaskDataset data, int[] indices) => tensor(indices.Select(i => data.Targets![i][0]).ToArray(), indices.Length, 1);

        public override (IReadOnlyList<long>? Labels, IReadOnlyList<float[]>? Targets) TextTargets(IReadOnlyList<TextExample> examples, LabelSet labels,
            Func<TextExample, string> where) =>
            (null, examples.Select(e => new[] { e.Target ?? throw new SharpTuneException($"{where(e)}: the regression target is missing.") }).ToList());

        public override string Decide(ReadOnlySpan<float> probabilities, IReadOnlyList<string> labels) =>
            probabilities[0].ToString("R", CultureInfo.InvariantCulture);

        public override Tensor Loss(Tensor logits, Tensor targets) => functional.mse_loss(Float(logits), Float(targets).view(logits.shape));

        public override Tensor Probabilities(Tensor logits) => Float(logits);

        public override EvaluationMetrics Evaluate(TaskDataset data, float[][] probabilities) =>
            Training.Metrics.Regression(data.Targets!.Select(t => t[0]).ToArray(), probabilities.Select(p => p[0]).ToArray());

        internal override void Check(TaskDataset data)
        {
            if (data.Targets is null || data.Targets.Any(t => t.Length != 1))
                throw new ArgumentException("Regression needs one target value per example.");
        }
    }

    private sealed class TokenTask : TaskType
    {
        public override string Name => "token";
        public override string? ProblemType => null;
        public override bool PerToken => true;
        public override IReadOnlyList<string> Metrics { get; } =
            [MetricNames.TokenAccuracy, MetricNames.EntityF1, MetricNames.EntityPrecision, MetricNames.EntityRecall, MetricNames.MacroF1, MetricNames.Loss];
        public override string DefaultMetric => MetricNames.TokenAccuracy;
        public override string HuggingFaceClass(Architecture architecture) => architecture.TokenClassificationClass;
        public override Head HuggingFaceHead(Encoder encoder, int outputs) => encoder.Architecture.TokenHead(encoder.Config, outputs);

        // [batch, longest]: each example's per-token labels, padding positions ignored.
        public override Tensor Targets(TaskDataset data, int[] indices)
        {
            int longest = indices.Max(data.Length);
            var flat = new long[indices.Length * longest];
            Array.Fill(flat, TokenWindows.IgnoreIndex);
            for (int row = 0; row < indices.Length; row++) data.TokenLabels![indices[row]].CopyTo(flat, row * longest);
            return tensor(flat, indices.Length, longest);
        }

        // Mean over the tokens that count; a batch where none counts has loss 0 (not NaN).
        public override Tensor Loss(Tensor logits, Tensor targets)
        {
            Tensor flatLogits = Float(logits).reshape(-1, logits.shape[^1]);
            Tensor flatTargets = targets.reshape(-1);
            Tensor summed = functional.cross_entropy(flatLogits, flatTargets, ignore_index: TokenWindows.IgnoreIndex, reduction: Reduction.Sum);
            using Scalar ignore = TokenWindows.IgnoreIndex.ToScalar();
            Tensor counted = flatTargets.ne(ignore).sum().clamp_min(Scalars.One).to_type(ScalarType.Float32);
            return summed / counted;
        }

        public override Tensor Probabilities(Tensor logits) => functional.softmax(Float(logits), -1);

        public override (IReadOnlyList<long>? Labels, IReadOnlyList<float[]>? Targets) TextTargets(IReadOnlyList<TextExample> examples, LabelSet labels,
            Func<TextExample, string> where) =>
            throw new SharpTuneException("Token classification reads tagged sentences (CoNLL or JSON lines with tokens and tags), not text examples.");

        // Words in sentence order: a token counts where its label is not ignored (each word's first sub-token in the
        // window that owns it), so the windows of one sentence give each of its words once.
        public override EvaluationMetrics Evaluate(TaskDataset data, float[][] probabilities)
        {
            var gold = new List<List<string>>();
            var predicted = new List<List<string>>();
            int width = data.NumLabels;
            int previous = -1;
            for (int i = 0; i < data.Count; i++)
            {
                if (data.Sentences![i] != previous)
                {
                    gold.Add([]);
                    predicted.Add([]);
                    previous = data.Sentences[i];
                }
                long[] labels = data.TokenLabels![i];
                for (int t = 0; t < labels.Length; t++)
                {
                    if (labels[t] == TokenWindows.IgnoreIndex) continue;
                    gold[^1].Add(data.LabelNames[(int)labels[t]]);
                    predicted[^1].Add(Decide(probabilities[i].AsSpan(t * width, width), data.LabelNames));
                }
            }
            return TokenMetrics.Compute(gold, predicted, data.LabelNames);
        }

        internal override void Check(TaskDataset data)
        {
            if (data.TokenLabels is null || data.Sentences is null)
                throw new ArgumentException("Token classification needs per-token labels and the sentence of each example.");
            for (int i = 0; i < data.Count; i++)
            {
                if (data.TokenLabels[i].Length != data.Length(i))
                    throw new ArgumentException($"Example {i}: {data.TokenLabels[i].Length} token labels for {data.Length(i)} tokens.");
                if (i > 0 && data.Sentences[i] < data.Sentences[i - 1])
                    throw new ArgumentException($"Example {i}: windows must be in sentence order.");
            }
        }
    }
}

/// <summary>Token-classification metrics: token accuracy, per-tag scores and confusion, and seqeval's entity scores when the tags have a scheme.</summary>
/// <param name="Count">Words evaluated.</param>
/// <param name="Sentences">Sentences evaluated.</param>
/// <param name="TokenAccuracy">Fraction of words whose predicted tag is the gold tag.</param>
/// <param name="MacroF1">Unweighted mean of the per-tag F1 scores.</param>
/// <param name="PerTag">Precision, recall and F1 of each tag (as classes).</param>
/// <param name="ConfusionMatrix">[gold tag][predicted tag] word counts.</param>
/// <param name="Entities">Entity-level scores (seqeval default mode), or null when the tags have no B-/I-/E-/S- scheme (e.g. POS tags).</param>
/// <param name="Scheme">The detected tag scheme, or null.</param>
public sealed record TokenMetrics(int Count, int Sentences, double TokenAccuracy, double MacroF1, IReadOnlyList<ClassScore> PerTag, int[][] ConfusionMatrix,
    EntityReport? Entities, TagScheme? Scheme) : EvaluationMetrics
{
    /// <inheritdoc />
    public override int Count { get; } = Count;

    /// <inheritdoc />
    protected override IEnumerable<(string Name, double Value)> Values()
    {
        yield return (MetricNames.TokenAccuracy, TokenAccuracy);
        if (Entities is { } e)
        {
            yield return (MetricNames.EntityF1, e.MicroF1);
            yield return (MetricNames.EntityPrecision, e.MicroPrecision);
            yield return (MetricNames.EntityRecall, e.MicroRecall);
        }
        yield return (MetricNames.MacroF1, MacroF1);
        foreach (var tag in PerTag) yield return (MetricNames.ClassF1Prefix + tag.Label, tag.F1);
    }

    /// <summary>The metrics of word-level gold and predicted tag sequences (one list per sentence) over the tag set <paramref name="tags"/>.</summary>
    public static TokenMetrics Compute(IReadOnlyList<IReadOnlyList<string>> gold, IReadOnlyList<IReadOnlyList<string>> predicted, IReadOnlyList<string> tags)
    {
        var index = tags.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i, StringComparer.Ordinal);
        int[] goldIds = gold.SelectMany(s => s).Select(t => index[t]).ToArray();
        int[] predictedIds = predicted.SelectMany(s => s).Select(t => index[t]).ToArray();
        ClassificationMetrics byTag = Metrics.Classification(goldIds, predictedIds, tags);
        TagScheme? scheme = EntityMetrics.DetectScheme(tags);
        EntityReport? entities = scheme is null ? null : EntityMetrics.Compute(gold, predicted);
        return new TokenMetrics(goldIds.Length, gold.Count, byTag.Accuracy, byTag.MacroF1, byTag.PerClass, byTag.ConfusionMatrix, entities, scheme);
    }
}
