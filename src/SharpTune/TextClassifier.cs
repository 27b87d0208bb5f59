using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Tokenization;
using SharpTune.Training;
using TorchSharp;

namespace SharpTune;

/// <summary>One prediction: the chosen label(s) and every label's probability (regression: the value).</summary>
/// <param name="Label">The arg-max label; for multi-label the labels at probability ≥ 0.5 joined by ';'; for regression the value.</param>
/// <param name="Probabilities">Per-label probability (regression: the predicted value under the label's name).</param>
public sealed record Prediction(string Label, IReadOnlyDictionary<string, float> Probabilities);

/// <summary>
/// A pretrained encoder, a head, a tokenizer and the labels: the library's front door.
/// <code>
/// using var classifier = TextClassifier.Create(modelDir, "mean", labels);
/// var result = classifier.Train(train, dev, Strategy.Parse("frozen"), new TrainingOptions());
/// classifier.Save("runs/frozen");
/// </code>
/// </summary>
public sealed class TextClassifier : IDisposable
{
    private TextClassifier(SequenceClassifier model, Tokenizer tokenizer, LabelSet labels, ProblemType problem, int maxLength, string? strategy)
    {
        // One label per token is a different task (targets, loss, metrics): not a text classifier.
        if (model.Head is TokenClassificationHead)
        {
            model.Dispose();
            throw new SharpTuneException($"This is a token-classification model ({model.Encoder.Architecture.TokenClassificationClass}); " +
                "train, evaluate and predict classify whole texts, and tagging tokens is not supported by them yet. Its encoder is a --model for train or embed.");
        }
        Model = model;
        Tokenizer = tokenizer;
        Labels = labels;
        Problem = problem;
        MaxLength = maxLength;
        StrategyName = strategy;
    }

    /// <summary>The encoder + head module.</summary>
    public SequenceClassifier Model { get; }
    /// <summary>The tokenizer of the pretrained model.</summary>
    public Tokenizer Tokenizer { get; }
    /// <summary>Label names by id (regression: one name for the target).</summary>
    public LabelSet Labels { get; }
    /// <summary>The task.</summary>
    public ProblemType Problem { get; }
    /// <summary>Texts are truncated to this many tokens.</summary>
    public int MaxLength { get; }
    /// <summary>The strategy of the last training, if any.</summary>
    public string? StrategyName { get; private set; }

    /// <summary>
    /// Loads a pretrained encoder from a Hugging Face directory (null: the packaged all-MiniLM-L6-v2) and puts
    /// a new head on it: a built-in name (cls, pooled, mean, or a registered type) with default options.
    /// </summary>
    public static TextClassifier Create(string? modelDirectory, string head, LabelSet labels,
        ProblemType problem = ProblemType.SingleLabelClassification, int maxLength = 128, int seed = 42) =>
        CreateWith(modelDirectory, (encoder, outputs) => HeadRegistry.Create(head, encoder, outputs), labels, problem, maxLength, seed);

    /// <summary>As the other overload, with a custom head built from (hidden size, outputs).</summary>
    public static TextClassifier Create(string? modelDirectory, Func<int, int, Head> head, LabelSet labels,
        ProblemType problem = ProblemType.SingleLabelClassification, int maxLength = 128, int seed = 42) =>
        CreateWith(modelDirectory, (encoder, outputs) => head(encoder.Config.HiddenSize, outputs), labels, problem, maxLength, seed);

    private static TextClassifier CreateWith(string? modelDirectory, Func<Encoder, int, Head> head, LabelSet labels,
        ProblemType problem, int maxLength, int seed)
    {
        if (labels.Count == 0) throw new SharpTuneException("No labels: the training data has no label values.");
        torch.manual_seed(seed);
        var encoder = PretrainedEncoder.Load(modelDirectory);
        int maxPositions = encoder.Directory.Config.MaxInputLength;
        if (maxLength < 2 || maxLength > maxPositions)
        {
            encoder.Dispose();
            throw new SharpTuneException($"--max-length must be in [2, {maxPositions}] for {encoder.Directory.Path}, got {maxLength}.");
        }
        var (bert, tokenizer, hf) = (encoder.Model, encoder.Tokenizer, encoder.Directory);
        int outputs = problem == ProblemType.Regression ? 1 : labels.Count;
        var model = new SequenceClassifier(bert, head(bert, outputs));
        return new TextClassifier(model, tokenizer, labels, problem, maxLength, null);
    }

    /// <summary>Loads a run directory saved by <see cref="Save"/> (or an HF BertForSequenceClassification checkpoint).</summary>
    public static TextClassifier Load(string directory)
    {
        Native.TorchRuntime.EnsureLoaded();
        var (model, labels, settings) = ClassifierCheckpoint.Load(directory);
        var tokenizer = Tokenizer.FromDirectory(directory);
        return new TextClassifier(model, tokenizer, labels, settings.Problem, settings.MaxLength, settings.Strategy);
    }

    /// <summary>Tokenizes examples and turns their labels into targets. Unknown labels are an error naming the line.</summary>
    public TaskDataset Encode(IReadOnlyList<TextExample> examples, string source = "data")
    {
        var (ids, types) = Tokenize(examples.Select(e => (e.Text, e.TextPair)).ToList());
        string Where(TextExample e) => e.Line > 0 ? $"{source}:{e.Line}" : source;
        switch (Problem)
        {
            case ProblemType.SingleLabelClassification:
                var labels = examples.Select(e => Labels.TryGetId(e.Label, out int id) ? (long)id
                    : throw new SharpTuneException($"{Where(e)}: label '{e.Label}' is not one the model knows ({string.Join(", ", Labels.Names)}).")).ToList();
                return new TaskDataset(Problem, Labels.Count, ids, types, labels, labelNames: Labels.Names);
            case ProblemType.MultiLabelClassification:
                var multiHot = examples.Select(e =>
                {
                    var row = new float[Labels.Count];
                    foreach (string label in e.Labels)
                        row[Labels.TryGetId(label, out int id) ? id
                            : throw new SharpTuneException($"{Where(e)}: label '{label}' is not one the model knows ({string.Join(", ", Labels.Names)}).")] = 1;
                    return row;
                }).ToList();
                return new TaskDataset(Problem, Labels.Count, ids, types, targets: multiHot, labelNames: Labels.Names);
            default:
                var values = examples.Select(e => new[] { e.Target ?? throw new SharpTuneException($"{Where(e)}: the regression target is missing.") }).ToList();
                return new TaskDataset(Problem, 1, ids, types, targets: values, labelNames: Labels.Names.Take(1).ToList());
        }
    }

    /// <summary>Trains under <paramref name="strategy"/>; see <see cref="Trainer"/>.</summary>
    public TrainingResult Train(IReadOnlyList<TextExample> train, IReadOnlyList<TextExample>? eval, Strategy strategy, TrainingOptions options,
        IProgress<TrainingEvent>? progress = null, CancellationToken cancellation = default)
    {
        TaskDataset trainData = Encode(train, "train");
        TaskDataset? evalData = eval is null ? null : Encode(eval, "eval");
        var result = new Trainer(Model, strategy, options, progress).Fit(trainData, evalData, cancellation);
        StrategyName = strategy.Name;
        return result;
    }

    /// <summary>Loss and metrics on labelled examples.</summary>
    public EvaluationOutput Evaluate(IReadOnlyList<TextExample> examples, int batchSize = 32, string device = "cpu", Precision precision = Precision.Fp32) =>
        Evaluator.Run(Model, Encode(examples, "eval"), batchSize, torch.device(device), precision: precision);

    /// <summary>Predicts the label and per-label probabilities of each text (and optional pair).</summary>
    public IReadOnlyList<Prediction> Predict(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs = null, int batchSize = 32, string device = "cpu",
        Precision precision = Precision.Fp32)
    {
        var (ids, types) = Tokenize(texts.Select((t, i) => (t, pairs?[i])).ToList());
        // Targets are not used for prediction; placeholders keep the dataset well-formed.
        var data = Problem == ProblemType.SingleLabelClassification
            ? new TaskDataset(Problem, Labels.Count, ids, types, labels: new long[ids.Length], labelNames: Labels.Names)
            : new TaskDataset(Problem, Problem == ProblemType.Regression ? 1 : Labels.Count, ids, types,
                targets: ids.Select(_ => new float[Problem == ProblemType.Regression ? 1 : Labels.Count]).ToList(),
                labelNames: Problem == ProblemType.Regression ? Labels.Names.Take(1).ToList() : Labels.Names);
        float[][] probabilities = Evaluator.Predict(Model, data, batchSize, torch.device(device), precision);
        return probabilities.Select(ToPrediction).ToList();
    }

    /// <summary>Saves a Hugging Face checkpoint (see <see cref="ClassifierCheckpoint"/>) into <paramref name="directory"/>.</summary>
    public void Save(string directory) =>
        ClassifierCheckpoint.Save(directory, Model, Tokenizer, Labels,
            new ClassifierSettings(Model.Head.GetType().Name, Model.Head.Options(), Model.Head.Outputs, Problem, MaxLength, StrategyName));

    /// <inheritdoc />
    public void Dispose() => Model.Dispose();

    // Token ids and token types per text, truncated to MaxLength; in parallel (the tokenizer is thread-safe).
    private (long[][] Ids, long[][] Types) Tokenize(IReadOnlyList<(string Text, string? Pair)> inputs)
    {
        var ids = new long[inputs.Count][];
        var types = new long[inputs.Count][];
        Parallel.For(0, inputs.Count, i =>
        {
            EncodedText encoded = Tokenizer.Encode(inputs[i].Text, inputs[i].Pair, MaxLength);
            ids[i] = encoded.InputIds;
            types[i] = encoded.TokenTypeIds;
        });
        return (ids, types);
    }

    private Prediction ToPrediction(float[] probabilities)
    {
        var names = Labels.Names;
        switch (Problem)
        {
            case ProblemType.Regression:
                return new Prediction(probabilities[0].ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                    new Dictionary<string, float> { [names[0]] = probabilities[0] });
            case ProblemType.MultiLabelClassification:
                return new Prediction(string.Join(TextDataset.MultiLabelSeparator, names.Where((_, i) => probabilities[i] >= 0.5f)),
                    names.Select((n, i) => (n, i)).ToDictionary(x => x.n, x => probabilities[x.i]));
            default:
                int best = Array.IndexOf(probabilities, probabilities.Max());
                return new Prediction(names[best], names.Select((n, i) => (n, i)).ToDictionary(x => x.n, x => probabilities[x.i]));
        }
    }
}
