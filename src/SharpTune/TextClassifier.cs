using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Lora;
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
public sealed class TextClassifier : TaskModel
{
    internal TextClassifier(SequenceClassifier model, Tokenizer tokenizer, LabelSet labels, TaskType task, int maxLength, string? strategy)
        : base(model, tokenizer, labels, TextTask(task, model), maxLength, strategy)
    {
    }

    // One label per token is a different front door (inputs are words, predictions per word).
    private static TaskType TextTask(TaskType task, SequenceClassifier model)
    {
        if (!task.PerToken) return task;
        model.Dispose();
        throw new SharpTuneException($"This is a token-classification model ({model.Encoder.Architecture.TokenClassificationClass}); " +
            "load it with TokenTagger.Load (the CLI reads it as a tagger: evaluate and predict take CoNLL or tokens/tags data).");
    }

    /// <summary>
    /// Loads a pretrained encoder from a Hugging Face directory (null: the packaged all-MiniLM-L6-v2) and puts
    /// a new head on it: a built-in name (cls, pooled, mean, hf, or a registered type) with default options.
    /// <paramref name="task"/>: single-label (default), multi-label or regression.
    /// </summary>
    public static TextClassifier Create(string? modelDirectory, string head, LabelSet labels,
        TaskType? task = null, int maxLength = 128, int seed = 42) =>
        CreateWith(modelDirectory, (encoder, outputs) => HeadRegistry.Create(head, encoder, outputs, task), labels, task, maxLength, seed);

    /// <summary>As the other overload, with a custom head built from (hidden size, outputs).</summary>
    public static TextClassifier Create(string? modelDirectory, Func<int, int, Head> head, LabelSet labels,
        TaskType? task = null, int maxLength = 128, int seed = 42) =>
        CreateWith(modelDirectory, (encoder, outputs) => head(encoder.Config.HiddenSize, outputs), labels, task, maxLength, seed);

    private static TextClassifier CreateWith(string? modelDirectory, Func<Encoder, int, Head> head, LabelSet labels, TaskType? task, int maxLength, int seed)
    {
        task ??= TaskType.SingleLabel;
        if (task.PerToken) throw new SharpTuneException($"A TextClassifier classifies whole texts; the {task.Name} task is a TokenTagger's.");
        var (model, tokenizer, baseModel) = Build(modelDirectory, head, labels, task, maxLength, seed);
        return new TextClassifier(model, tokenizer, labels, task, maxLength, null) { BaseModel = baseModel };
    }

    /// <summary>Loads a run directory saved by <see cref="TaskModel.Save"/> (or an HF XForSequenceClassification checkpoint).</summary>
    public static TextClassifier Load(string directory)
    {
        TaskModel loaded = TaskModel.Load(directory);
        if (loaded is TextClassifier classifier) return classifier;
        string className = loaded.Model.Encoder.Architecture.TokenClassificationClass;
        loaded.Dispose();
        throw new SharpTuneException($"{directory}: this is a token-classification model ({className}); load it with TokenTagger.Load " +
            "(the CLI reads it as a tagger: evaluate and predict take CoNLL or tokens/tags data).");
    }

    /// <summary>
    /// Loads a PEFT LoRA adapter directory onto its base model (see <see cref="ClassifierCheckpoint.LoadWithAdapter"/>):
    /// <paramref name="baseModel"/> is the Hugging Face directory it was trained on (null: the packaged MiniLM).
    /// </summary>
    public static TextClassifier LoadAdapter(string? baseModel, string adapterDirectory)
    {
        TaskModel loaded = TaskModel.LoadAdapter(baseModel, adapterDirectory);
        if (loaded is TextClassifier classifier) return classifier;
        loaded.Dispose();
        throw new SharpTuneException($"{adapterDirectory}: this is a token-classification adapter ({PeftAdapter.TokenTask}); load it with TokenTagger.LoadAdapter.");
    }

    /// <summary>Tokenizes examples and turns their labels into targets. Unknown labels are an error naming the line.</summary>
    public TaskDataset Encode(IReadOnlyList<TextExample> examples, string source = "data")
    {
        var (ids, types) = Tokenize(examples.Select(e => (e.Text, e.TextPair)).ToList());
        string Where(TextExample e) => e.Line > 0 ? $"{source}:{e.Line}" : source;
        var (labels, targets) = Task.TextTargets(examples, Labels, Where);
        return new TaskDataset(Task, Task.Outputs(Labels.Count), ids, types, labels, targets, Labels.Names.Take(Task.Outputs(Labels.Count)).ToList());
    }

    /// <summary>Trains under <paramref name="strategy"/>; see <see cref="Trainer"/>.</summary>
    public TrainingResult Train(IReadOnlyList<TextExample> train, IReadOnlyList<TextExample>? eval, Strategy strategy, TrainingOptions options,
        IProgress<TrainingEvent>? progress = null, CancellationToken cancellation = default) =>
        Fit(Encode(train, "train"), eval is null ? null : Encode(eval, "eval"), strategy, options, progress, cancellation);

    /// <summary>Loss and metrics on labelled examples.</summary>
    public EvaluationOutput Evaluate(IReadOnlyList<TextExample> examples, int batchSize = 32, string device = "cpu", Precision precision = Precision.Fp32) =>
        Evaluate(Encode(examples, "eval"), batchSize, device, precision);

    /// <summary>Predicts the label and per-label probabilities of each text (and optional pair).</summary>
    public IReadOnlyList<Prediction> Predict(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs = null, int batchSize = 32, string device = "cpu",
        Precision precision = Precision.Fp32)
    {
        var (ids, types) = Tokenize(texts.Select((t, i) => (t, pairs?[i])).ToList());
        var data = TaskDataset.Unlabelled(Task, Task.Outputs(Labels.Count), ids, types, Labels.Names.Take(Task.Outputs(Labels.Count)).ToList());
        float[][] probabilities = Evaluator.Predict(Model, data, batchSize, Native.Devices.Parse(device), precision, OnnxRuntime);
        return probabilities.Select(p => new Prediction(Task.Decide(p, Labels.Names), Labels.Names.Take(p.Length).Select((n, i) => (n, i)).ToDictionary(x => x.n, x => p[x.i]))).ToList();
    }

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
}
