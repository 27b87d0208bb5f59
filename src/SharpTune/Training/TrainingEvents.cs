using SharpTune.Strategies;

namespace SharpTune.Training;

/// <summary>What the trainer reports while it runs; it never writes to the console itself.</summary>
public abstract record TrainingEvent;

/// <summary>The parameter table, before training (and again when gradual unfreezing changes it).</summary>
public sealed record PlanEvent(TrainingPlan Plan) : TrainingEvent;

/// <summary>The frozen backbone's features were computed once.</summary>
public sealed record FeaturesCachedEvent(int Examples, double Seconds, string Source, long Bytes = 0) : TrainingEvent;

/// <summary>A training run starts: its size.</summary>
public sealed record TrainingStartedEvent(int Epochs, int StepsPerEpoch, int Examples, double PaddingRatio, bool FromFeatureCache) : TrainingEvent;

/// <summary>One optimizer step done.</summary>
public sealed record StepEvent(int Epoch, int Step, int TotalSteps, double Loss, double LearningRate, double SamplesPerSecond, TimeSpan Elapsed) : TrainingEvent
{
    /// <summary>Estimated time to the end of training.</summary>
    public TimeSpan Remaining => Step == 0 ? TimeSpan.Zero : Elapsed * ((double)(TotalSteps - Step) / Step);
}

/// <summary>An evaluation on the eval set.</summary>
public sealed record EvaluationEvent(int Epoch, int Step, double TrainLoss, IReadOnlyDictionary<string, double> Metrics, bool IsBest) : TrainingEvent
{
    /// <summary>The whole evaluation: each example's probabilities (dataset order) and the task's detailed metrics
    /// (per-class scores, confusion matrix); null when the event was made elsewhere than by the trainer.</summary>
    public EvaluationOutput? Output { get; init; }
}

/// <summary>
/// Training continues from the checkpoint <see cref="Directory"/>, written after <see cref="Step"/>
/// (<see cref="TrainingOptions.ResumeFrom"/>): reported before anything else, so that a record can start with the run's history.
/// </summary>
public sealed record ResumedEvent(int Step, string Directory) : TrainingEvent;

/// <summary>
/// A checkpoint after <see cref="Step"/> is being assembled in <see cref="Directory"/>, not yet in place: a listener may add
/// files to it (the <see cref="RunRecorder"/> adds the record so far), which are part of the checkpoint once it appears.
/// </summary>
public sealed record CheckpointWritingEvent(int Step, string Directory) : TrainingEvent;

/// <summary>A checkpoint to resume from was written after <see cref="Step"/>.</summary>
public sealed record CheckpointEvent(int Step, string Directory) : TrainingEvent;

/// <summary>Early stopping ended the run; the weights of <see cref="BestEpoch"/> were restored.</summary>
public sealed record EarlyStoppingEvent(int BestEpoch, int BestStep, double BestValue, string Metric) : TrainingEvent;

/// <summary>The freeze audit after training.</summary>
public sealed record AuditEvent(AuditReport Audit) : TrainingEvent;
