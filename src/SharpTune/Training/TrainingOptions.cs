using SharpTune.Models;
using SharpTune.Strategies;

namespace SharpTune.Training;

/// <summary>How the learning rate moves after warm-up.</summary>
public enum LearningRateSchedule
{
    /// <summary>Linear decay to zero (HF's default).</summary>
    Linear,
    /// <summary>Half a cosine down to zero.</summary>
    Cosine,
    /// <summary>Constant after warm-up.</summary>
    Constant,
}

/// <summary>Training hyper-parameters. Defaults follow HF's Trainer where it has one.</summary>
public sealed record TrainingOptions
{
    /// <summary>Passes over the training data (with <see cref="MaxSeconds"/> or <see cref="MaxSteps"/>: at most this many).</summary>
    public int Epochs { get; init; } = 3;
    /// <summary>
    /// A time budget: training (feature caching included, evaluation excluded) stops after the optimizer step that
    /// reaches this many seconds; null: none. The number of steps is then not known in advance, so the rate cannot
    /// decay over it: <see cref="Schedule"/> must be <see cref="LearningRateSchedule.Constant"/>, and the warm-up covers
    /// <see cref="WarmupRatio"/> of one epoch's steps. A budgeted run is evaluated where it ends (and every
    /// <see cref="EvalEverySteps"/> when set), not after every epoch: a run of many cheap epochs would otherwise get
    /// more chances to keep a lucky evaluation than a run of a few costly ones. A resumed run (<see cref="ResumeFrom"/>)
    /// needs the same budget and continues from the training time its checkpoint recorded.
    /// </summary>
    public double? MaxSeconds { get; init; }
    /// <summary>
    /// A step budget: training stops after this many optimizer steps, the schedule runs over them, and the run is
    /// evaluated where it ends, as with <see cref="MaxSeconds"/>; null: none. A resumed run needs the same budget.
    /// </summary>
    public int? MaxSteps { get; init; }
    /// <summary>Examples per forward pass.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Forward passes per optimizer step (effective batch = BatchSize × this).</summary>
    public int GradientAccumulationSteps { get; init; } = 1;
    /// <summary>Learning rates: base, head, layer-wise decay.</summary>
    public LearningRates LearningRates { get; init; } = new();
    /// <summary>AdamW decoupled weight decay, applied to weight matrices only (never biases or LayerNorms).</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Share of the optimizer steps spent warming up linearly from zero.</summary>
    public double WarmupRatio { get; init; } = 0.1;
    /// <summary>Schedule after warm-up.</summary>
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Linear;
    /// <summary>Gradient-norm clipping (null: none).</summary>
    public double? MaxGradNorm { get; init; } = 1.0;
    /// <summary>Evaluate every N optimizer steps; null evaluates once per epoch.</summary>
    public int? EvalEverySteps { get; init; }
    /// <summary>Stop after this many evaluations without improvement (null: never), restoring the best weights.</summary>
    public int? EarlyStoppingPatience { get; init; }
    /// <summary>Metric that picks the best evaluation: loss, accuracy, macro_f1, mcc, micro_f1, pearson, spearman, mse.</summary>
    public string MetricForBest { get; init; } = "loss";
    /// <summary>Seed of the head's initialisation, dropout and the batch order: the same seed repeats a run.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Group examples of similar length into batches.</summary>
    public bool LengthBucketing { get; init; } = true;
    /// <summary>With a backbone frozen for the whole run, encode each example once and train the head on the cached features.</summary>
    public bool CacheFrozenFeatures { get; init; } = true;
    /// <summary>
    /// Keep the frozen features on disk too, so that a later run over the same encoder weights, head input,
    /// precision and token ids reads them instead of encoding again (see <see cref="FeatureCache"/>).
    /// </summary>
    public bool DiskFeatureCache { get; init; } = true;
    /// <summary>Where the disk feature cache lives; null: <see cref="FeatureCache.DefaultDirectory"/>.</summary>
    public string? FeatureCacheDirectory { get; init; }
    /// <summary>Number format of the encoder's matrix multiplications (weights and optimizer stay float32).</summary>
    public Precision Precision { get; init; } = Precision.Fp32;
    /// <summary>Device: cpu, cuda, cuda:1 …</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// Where checkpoints to resume from go (<c>checkpoint-STEP/</c> inside it): one at every epoch end, and every
    /// <see cref="SaveEverySteps"/> steps. Null: none.
    /// </summary>
    public string? CheckpointDirectory { get; init; }
    /// <summary>Also write a checkpoint every N optimizer steps (needs <see cref="CheckpointDirectory"/>).</summary>
    public int? SaveEverySteps { get; init; }
    /// <summary>Keep only the newest K checkpoints (null: all).</summary>
    public int? SaveTotalLimit { get; init; }
    /// <summary>
    /// A checkpoint directory to continue from (see <see cref="TrainingCheckpoint"/>); the model must hold its weights
    /// already (load it with <see cref="TaskModel"/>'s Load). The run then ends with the weights of an uninterrupted one.
    /// </summary>
    public string? ResumeFrom { get; init; }

    /// <summary>Throws a <see cref="SharpTuneException"/> naming the bad option.</summary>
    public TrainingOptions Validate()
    {
        if (Epochs <= 0) throw new SharpTuneException($"--epochs must be positive, got {Epochs}.");
        Native.Devices.Parse(Device); // cpu, cuda, cuda:N, and there
        if (BatchSize <= 0) throw new SharpTuneException($"--batch-size must be positive, got {BatchSize}.");
        if (GradientAccumulationSteps <= 0) throw new SharpTuneException($"--grad-accum must be positive, got {GradientAccumulationSteps}.");
        if (WeightDecay < 0) throw new SharpTuneException($"--weight-decay must not be negative, got {WeightDecay}.");
        if (WarmupRatio is < 0 or >= 1) throw new SharpTuneException($"--warmup-ratio must be in [0, 1), got {WarmupRatio}.");
        if (MaxGradNorm is <= 0) throw new SharpTuneException($"--max-grad-norm must be positive, got {MaxGradNorm}.");
        if (EvalEverySteps is <= 0) throw new SharpTuneException($"--eval-steps must be positive, got {EvalEverySteps}.");
        if (MaxSeconds is { } seconds && !(seconds > 0 && double.IsFinite(seconds))) throw new SharpTuneException($"--seconds must be positive, got {seconds}.");
        if (MaxSteps is <= 0) throw new SharpTuneException($"--steps must be positive, got {MaxSteps}.");
        if (MaxSeconds is not null && Schedule != LearningRateSchedule.Constant)
            throw new SharpTuneException($"A time budget needs --schedule constant (the number of steps is not known in advance), got {Schedule.ToString().ToLowerInvariant()}.");
        if (EarlyStoppingPatience is <= 0) throw new SharpTuneException($"--patience must be positive, got {EarlyStoppingPatience}.");
        if (SaveEverySteps is <= 0) throw new SharpTuneException($"--save-steps must be positive, got {SaveEverySteps}.");
        if (SaveTotalLimit is <= 0) throw new SharpTuneException($"--save-total-limit must be positive, got {SaveTotalLimit}.");
        if (SaveEverySteps is not null && CheckpointDirectory is null) throw new SharpTuneException("--save-steps needs a directory for the checkpoints.");
        LearningRates.Validate();
        return this;
    }
}
