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

/// <summary>
/// What the front doors share: a pretrained encoder with a head (<see cref="Model"/>), its tokenizer, the labels and the
/// task; training under a strategy, evaluation and saving. <see cref="TextClassifier"/> classifies texts and
/// <see cref="TokenTagger"/> tags words; each turns its own inputs into a <see cref="TaskDataset"/>.
/// </summary>
public abstract class TaskModel : IDisposable
{
    /// <summary>Takes ownership of <paramref name="model"/>; refuses a head that does not fit <paramref name="task"/> (and disposes the model then).</summary>
    protected TaskModel(SequenceClassifier model, Tokenizer tokenizer, LabelSet labels, TaskType task, int maxLength, string? strategy)
    {
        try
        {
            task.CheckHead(model.Head);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        Model = model;
        Tokenizer = tokenizer;
        Labels = labels;
        Task = task;
        MaxLength = maxLength;
        StrategyName = strategy;
    }

    /// <summary>The encoder + head module.</summary>
    public SequenceClassifier Model { get; }
    /// <summary>The tokenizer of the pretrained model.</summary>
    public Tokenizer Tokenizer { get; }
    /// <summary>Label names by id (regression: one name for the target; token classification: the tags).</summary>
    public LabelSet Labels { get; }
    /// <summary>What the model learns.</summary>
    public TaskType Task { get; }
    /// <summary>Token limit of one model input (texts are truncated to it; tagged sentences are split into windows of it).</summary>
    public int MaxLength { get; }
    /// <summary>The strategy of the last training, if any.</summary>
    public string? StrategyName { get; private set; }

    /// <summary>
    /// The pretrained model that LoRA adapters are trained against, written as a PEFT adapter's
    /// <c>base_model_name_or_path</c> (<see cref="WriteAdapterFiles"/>, and the <c>adapter/</c> of a LoRA run's
    /// checkpoints): what a new model was created from — <c>org/name@commit</c> for a snapshot of the hub cache, else its
    /// full path (<see cref="Hub.HubModelId.NameOrPath"/>); for a loaded run or checkpoint, the base its <c>adapter/</c>
    /// names; else null.
    /// </summary>
    public string? BaseModel { get; set; }

    /// <summary>
    /// Loads a pretrained encoder from a Hugging Face directory (null: the packaged all-MiniLM-L6-v2) and puts
    /// <paramref name="head"/> on it, with <paramref name="task"/>'s number of outputs for <paramref name="labels"/>.
    /// </summary>
    protected static (SequenceClassifier Model, Tokenizer Tokenizer, string BaseModel) Build(string? modelDirectory, Func<Encoder, int, Head> head, LabelSet labels,
        TaskType task, int maxLength, int seed)
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
        Head built;
        try
        {
            built = head(encoder.Model, task.Outputs(labels.Count));
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
        return (new SequenceClassifier(encoder.Model, built), encoder.Tokenizer, Hub.HubModelId.NameOrPath(encoder.Directory.Path));
    }

    /// <summary>
    /// Loads a run directory or a Python-saved task checkpoint as the front door its task needs: a <see cref="TokenTagger"/>
    /// for token classification (<paramref name="stride"/>: its window overlap), else a <see cref="TextClassifier"/>.
    /// </summary>
    public static TaskModel Load(string directory, int? stride = null)
    {
        Native.TorchRuntime.EnsureLoaded();
        var (model, labels, settings) = ClassifierCheckpoint.Load(directory);
        Tokenizer tokenizer;
        try
        {
            tokenizer = Tokenizer.FromDirectory(directory);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        TaskModel loaded = settings.Task.PerToken
            ? new TokenTagger(model, tokenizer, labels, settings.MaxLength, settings.Strategy, stride)
            : new TextClassifier(model, tokenizer, labels, settings.Task, settings.MaxLength, settings.Strategy);
        string adapter = Path.Combine(directory, PeftAdapter.RunSubdirectory);
        if (PeftAdapter.IsAdapterDirectory(adapter))
        {
            try
            {
                loaded.BaseModel = PeftAdapter.ReadConfig(adapter).BaseModelNameOrPath;
            }
            catch
            {
                loaded.Dispose();
                throw;
            }
        }
        return loaded;
    }

    /// <summary>
    /// Loads a PEFT LoRA adapter directory onto its base model <paramref name="baseModel"/> (null: the packaged MiniLM; see
    /// <see cref="ClassifierCheckpoint.LoadWithAdapter"/>) as the front door its task needs: a <see cref="TokenTagger"/>
    /// for a token-classification adapter (<paramref name="stride"/>: its window overlap), else a <see cref="TextClassifier"/>.
    /// </summary>
    public static TaskModel LoadAdapter(string? baseModel, string adapterDirectory, int? stride = null)
    {
        Native.TorchRuntime.EnsureLoaded();
        var (model, tokenizer, labels, settings) = ClassifierCheckpoint.LoadWithAdapter(baseModel, adapterDirectory);
        TaskModel loaded = settings.Task.PerToken
            ? new TokenTagger(model, tokenizer, labels, settings.MaxLength, settings.Strategy, stride)
            : new TextClassifier(model, tokenizer, labels, settings.Task, settings.MaxLength, settings.Strategy);
        loaded.BaseModel = baseModel is null ? null : Hub.HubModelId.NameOrPath(baseModel);
        return loaded;
    }

    /// <summary>Trains on encoded data under <paramref name="strategy"/>; see <see cref="Trainer"/>.</summary>
    public TrainingResult Fit(TaskDataset train, TaskDataset? eval, Strategy strategy, TrainingOptions options,
        IProgress<TrainingEvent>? progress = null, CancellationToken cancellation = default)
    {
        StrategyName = strategy.Name; // checkpoints written during training name it too
        return new Trainer(Model, strategy, options, progress) { ModelWriter = WriteCheckpointFiles }.Fit(train, eval, cancellation);
    }

    // A checkpoint: the model files, and for a LoRA run also its PEFT adapter (adapter/, as the finished run has it).
    private void WriteCheckpointFiles(string directory)
    {
        if (LoraInjector.HasAdapters(Model)) WriteAdapterFiles(Path.Combine(directory, PeftAdapter.RunSubdirectory), BaseModel);
        WriteFiles(directory);
    }

    /// <summary>Loss and metrics on encoded, labelled data.</summary>
    public EvaluationOutput Evaluate(TaskDataset data, int batchSize = 32, string device = "cpu", Precision precision = Precision.Fp32) =>
        Evaluator.Run(Model, data, batchSize, Native.Devices.Parse(device), precision: precision, onnx: OnnxRuntime);

    /// <summary>The ONNX Runtime model that computes the logits of <see cref="Evaluate(TaskDataset, int, string, Precision)"/> and of predictions instead of TorchSharp, or null (see <see cref="UseOnnxRuntime"/>).</summary>
    public Export.OnnxRuntimeModel? OnnxRuntime { get; private set; }

    /// <summary>
    /// Runs evaluation and prediction through <paramref name="runtime"/> (this model's export, e.g. from
    /// <see cref="Export.RuntimeSelector.Apply"/>), or through TorchSharp again when null; takes ownership of it.
    /// Training always uses TorchSharp.
    /// </summary>
    public void UseOnnxRuntime(Export.OnnxRuntimeModel? runtime)
    {
        OnnxRuntime?.Dispose();
        OnnxRuntime = runtime;
    }

    /// <summary>
    /// Saves a Hugging Face checkpoint (see <see cref="ClassifierCheckpoint"/>) as the directory
    /// <paramref name="directory"/>, as a whole: a previous directory there is replaced only once the new one is complete
    /// (see <see cref="StagedDirectory"/>).
    /// </summary>
    public void Save(string directory) => StagedDirectory.Write(directory, WriteFiles);

    /// <summary>
    /// Writes the checkpoint's files into <paramref name="directory"/>, a directory being assembled with other files
    /// (a run's <see cref="StagedDirectory.Path"/>); <see cref="Save"/> is this plus the swap into place.
    /// </summary>
    public void WriteFiles(string directory) => ClassifierCheckpoint.Write(directory, Model, Tokenizer, Labels, Settings());

    /// <summary>
    /// Saves the LoRA adapters and the head as a PEFT adapter directory (see <see cref="PeftAdapter"/>), as a whole,
    /// plus sharptune.json with the head and labels. <paramref name="baseModel"/> is written as base_model_name_or_path.
    /// </summary>
    public void SaveAdapter(string directory, string? baseModel) => StagedDirectory.Write(directory, d => WriteAdapterFiles(d, baseModel));

    /// <summary>As <see cref="SaveAdapter"/>, into a directory being assembled (e.g. <c>adapter/</c> of a run's <see cref="StagedDirectory.Path"/>).</summary>
    public void WriteAdapterFiles(string directory, string? baseModel)
    {
        PeftAdapter.Write(directory, Model, baseModel);
        ClassifierCheckpoint.WriteSettings(directory, Model, Settings(), Labels);
    }

    /// <summary>
    /// Exports the model to ONNX at <paramref name="path"/> (see <see cref="Export.OnnxExporter"/>): output <c>logits</c>,
    /// dynamic batch and sequence axes, LoRA adapters merged into the written weights (the model is not changed).
    /// </summary>
    public Export.OnnxExportReport ExportOnnx(string path, Export.OnnxExportOptions? options = null) => Export.OnnxExporter.Export(Model, path, options);

    private ClassifierSettings Settings() =>
        new(Model.Head.GetType().Name, Model.Head.Options(), Model.Head.Outputs, Task, MaxLength, StrategyName);

    /// <inheritdoc />
    public void Dispose()
    {
        OnnxRuntime?.Dispose();
        Model.Dispose();
        GC.SuppressFinalize(this);
    }
}
