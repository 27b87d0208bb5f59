using System.Diagnostics;
using System.Globalization;
using SharpTune.Models;
using SharpTune.Strategies;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>What a training run produced.</summary>
/// <param name="Plan">The parameter table of the last epoch.</param>
/// <param name="Audit">The freeze audit.</param>
/// <param name="Evaluations">Every evaluation, in order.</param>
/// <param name="BestEvaluation">The evaluation whose weights the model holds now (null without eval data).</param>
/// <param name="TrainSeconds">Wall time of training (feature caching included, evaluation excluded).</param>
/// <param name="SamplesPerSecond">Training examples processed per second.</param>
/// <param name="PaddingRatio">Padded tokens over real tokens in the first epoch's batches.</param>
/// <param name="UsedFeatureCache">Whether the head trained on cached frozen features.</param>
/// <param name="Stopped">Why training ended early (cancelled, early stopping, a numeric fault), or null.</param>
/// <param name="Fault">The NaN or infinity that stopped the run, or null.</param>
public sealed record TrainingResult(TrainingPlan Plan, AuditReport Audit, IReadOnlyList<EvaluationEvent> Evaluations,
    EvaluationEvent? BestEvaluation, double TrainSeconds, double SamplesPerSecond, double PaddingRatio, bool UsedFeatureCache, string? Stopped,
    NumericFault? Fault = null);

/// <summary>
/// A NaN or infinity in the loss or in a gradient. The step it would have been was not taken: the model holds the
/// weights after step <see cref="Step"/> − 1.
/// </summary>
/// <param name="Epoch">Zero-based epoch.</param>
/// <param name="Step">The optimizer step (one-based) that was being built.</param>
/// <param name="Batch">Zero-based batch of the epoch.</param>
/// <param name="Value">The loss, or the total gradient norm.</param>
/// <param name="Tensor">The first parameter whose gradient is not finite; null when the loss is.</param>
public sealed record NumericFault(int Epoch, int Step, int Batch, double Value, string? Tensor)
{
    /// <summary>One line naming where the fault appeared.</summary>
    public string Message => (Tensor is null ? $"the loss is {Value}" : $"the gradient of {Tensor} is not finite (total norm {Value})") +
        $" at step {Step} (epoch {Epoch + 1}, batch {Batch + 1}); the weights are those after step {Step - 1}";
}

/// <summary>
/// Fine-tunes a <see cref="SequenceClassifier"/> under a <see cref="Strategy"/>. <see cref="Fit"/> reads top to
/// bottom: plan → snapshot → (frozen: cache features) → (resuming: the checkpoint's state) → epochs → batches → step →
/// evaluate → checkpoint → restore best → audit.
/// </summary>
public sealed class Trainer(SequenceClassifier model, Strategy strategy, TrainingOptions options, IProgress<TrainingEvent>? progress = null)
{
    private readonly TrainingOptions options = options.Validate();
    private readonly Device device = torch.device(options.Device);

    /// <summary>
    /// Writes the model files into a checkpoint directory (the run directory's writer, e.g. <see cref="TaskModel.WriteFiles"/>);
    /// needed with <see cref="TrainingOptions.CheckpointDirectory"/>.
    /// </summary>
    public Action<string>? ModelWriter { get; init; }

    /// <summary>Trains on <paramref name="train"/>, evaluating on <paramref name="eval"/> when given.</summary>
    public TrainingResult Fit(TaskDataset train, TaskDataset? eval = null, CancellationToken cancellation = default)
    {
        Native.TorchRuntime.EnsureLoaded(); // libtorch loaded, its thread count set
        torch.manual_seed(options.Seed);
        evaluationSeconds = 0;
        int layers = model.Encoder.Config.NumHiddenLayers;
        if (options.CheckpointDirectory is not null && ModelWriter is null)
            throw new ArgumentException("Checkpoints need a ModelWriter.", nameof(options));
        using TrainingCheckpoint? resume = options.ResumeFrom is { } from ? TrainingCheckpoint.Read(from) : null;
        resume?.CheckFixed(FixedSettings(train), options.ResumeFrom!);
        if (resume is not null) progress?.Report(new ResumedEvent(resume.Step, options.ResumeFrom!));
        model.to(device);

        // 1. Say what trains, and remember where every tensor started.
        TrainingPlan plan = StrategyApplier.Apply(model, strategy, epoch: 0, options.LearningRates);
        resume?.RestoreAdapters(model, options.ResumeFrom!); // a LoRA run's layers as they were, unmerged
        progress?.Report(new PlanEvent(plan));
        var everTrainable = new HashSet<string>(plan.Trainable.Select(e => e.Key));
        using var audit = FreezeAudit.Snapshot(model);

        // 2. A backbone frozen for the whole run is computed once: the head trains on cached features.
        //    The eval set's features are encoded once too (before the clock: evaluation is not training time).
        bool frozenThroughout = options.CacheFrozenFeatures && BackboneFrozenThroughout(plan);
        using FeatureCache? evalCache = frozenThroughout && eval is not null
            ? FeatureCache.Build(model, eval, options.BatchSize, device, null, options.Precision, DiskCacheDirectory()) : null;
        var clock = Stopwatch.StartNew();
        FeatureCache? cache = frozenThroughout
            ? FeatureCache.Build(model, train, options.BatchSize, device, progress, options.Precision, DiskCacheDirectory()) : null;

        var batcher = new Batcher(train, options.BatchSize, options.LengthBucketing, model.Encoder.Config.PadTokenId);
        int batchesPerEpoch = (train.Count + options.BatchSize - 1) / options.BatchSize;
        int stepsPerEpoch = (batchesPerEpoch + options.GradientAccumulationSteps - 1) / options.GradientAccumulationSteps;
        int totalSteps = options.MaxSteps ?? (int)Math.Min(int.MaxValue, (long)stepsPerEpoch * options.Epochs);
        bool budgeted = options.MaxSeconds is not null || options.MaxSteps is not null; // evaluated where the budget ends
        double paddingRatio = batcher.PaddingRatio(batcher.Plan(options.Seed, 0));
        progress?.Report(new TrainingStartedEvent(options.Epochs, stepsPerEpoch, train.Count, paddingRatio, cache is not null));

        var optimizer = new GroupedAdamW(options.WeightDecay);
        optimizer.AddTrainable(plan, options.LearningRates, layers);

        // 3. Resuming continues the checkpoint's position with its running figures; otherwise everything starts at zero.
        var evaluations = resume?.Evaluations.ToList() ?? [];
        EvaluationEvent? best = resume?.BestIndex is { } bestIndex ? evaluations[bestIndex] : null;
        Dictionary<string, Tensor>? bestWeights = resume?.BestWeights?.ToDictionary(w => w.Key, w => w.Value.to(device, copy: true).DetachFromDisposeScope());
        int step = resume?.Step ?? 0, evaluationsWithoutImprovement = resume?.EvaluationsWithoutImprovement ?? 0;
        long samples = resume?.Samples ?? 0;
        string? stopped = null;
        NumericFault? fault = null;
        double lossSum = resume?.LossSum ?? 0;
        int lossCount = resume?.LossCount ?? 0;
        int firstEpoch = resume?.Epoch ?? 0;
        double earlierSeconds = resume?.TrainSeconds ?? 0; // a time budget continues
        double TrainedSeconds() => earlierSeconds + clock.Elapsed.TotalSeconds - evaluationSeconds;
        // The run's wall time continues too (older checkpoints recorded only the training seconds).
        TimeSpan earlierElapsed = TimeSpan.FromSeconds(resume is null ? 0 : resume.ElapsedSeconds ?? resume.TrainSeconds);
        TimeSpan Elapsed() => earlierElapsed + clock.Elapsed;
        for (int epoch = 1; epoch < firstEpoch; epoch++) plan = OpenEpoch(epoch, plan, optimizer, everTrainable, layers);

        for (int epoch = firstEpoch; epoch < options.Epochs && stopped is null; epoch++)
        {
            if (epoch > 0) plan = OpenEpoch(epoch, plan, optimizer, everTrainable, layers);
            StrategyApplier.SetTrainingMode(model, plan);
            // The optimizer's moments and the random numbers (dropout) continue from the checkpoint.
            if (resume is not null && epoch == firstEpoch) resume.Restore(optimizer.States(), options.ResumeFrom!);

            IReadOnlyList<int[]> batches = batcher.Plan(options.Seed, epoch);
            int firstBatch = epoch == firstEpoch ? resume?.Batch ?? 0 : 0;
            using var prefetcher = new BatchPrefetcher(batcher.Make, batches.Skip(firstBatch).ToList()); // makes the next batches while this one trains
            for (int b = firstBatch; b < batches.Count; b++)
            {
                if (cancellation.IsCancellationRequested) { stopped = "cancelled"; break; }
                double loss;
                using (Batch batch = prefetcher.Next())
                    loss = ForwardBackward(batch, cache, train.Task, AccumulationScale(b, batches.Count, options.GradientAccumulationSteps));
                if (!double.IsFinite(loss)) fault = new NumericFault(epoch, step + 1, b, loss, null);
                lossSum += loss;
                lossCount++;
                samples += batches[b].Length;

                bool lastOfAccumulation = (b + 1) % options.GradientAccumulationSteps == 0 || b == batches.Count - 1;
                if (fault is null && lastOfAccumulation)
                {
                    double norm = optimizer.GradientNorm();
                    if (!double.IsFinite(norm)) fault = new NumericFault(epoch, step + 1, b, norm, optimizer.FirstNonFiniteGradient() ?? "every tensor (each finite, their norm overflows)");
                    else if (options.MaxGradNorm is { } maxNorm) optimizer.ClipGradients(maxNorm, norm);
                }
                if (fault is not null)
                {
                    // The step is not taken: the model keeps the last good weights.
                    optimizer.ZeroGrad();
                    stopped = fault.Message;
                    break;
                }
                if (!lastOfAccumulation) continue;
                double rate = optimizer.SetSchedule(LearningRateFactor(step, options.MaxSeconds is null ? totalSteps : stepsPerEpoch));
                optimizer.Step();
                optimizer.ZeroGrad();
                step++;
                progress?.Report(new StepEvent(epoch, step, totalSteps, lossSum / lossCount, rate, samples / TrainedSeconds(), Elapsed()));

                if (step >= options.MaxSteps) stopped = "step budget";
                else if (TrainedSeconds() >= options.MaxSeconds) stopped = "time budget";
                bool evaluateNow = eval is not null && (options.EvalEverySteps is { } every && step % every == 0 || stopped is not null);
                if (evaluateNow && EvaluateAndKeepBest(eval!, evalCache, epoch, step, ref best, ref bestWeights, ref evaluationsWithoutImprovement, evaluations, lossSum / lossCount))
                    stopped ??= "early stopping";
                if (evaluateNow) StrategyApplier.SetTrainingMode(model, plan);
                if (stopped is not null) break;
                if (options.SaveEverySteps is { } save && step % save == 0 && b + 1 < batches.Count)
                    SaveCheckpoint(epoch, b + 1, step, samples, lossSum, lossCount, evaluationsWithoutImprovement, evaluations, best, bestWeights, optimizer, train, TrainedSeconds(), Elapsed());
            }

            if (eval is not null && options.EvalEverySteps is null && stopped is null && (!budgeted || epoch == options.Epochs - 1) &&
                EvaluateAndKeepBest(eval, evalCache, epoch, step, ref best, ref bestWeights, ref evaluationsWithoutImprovement, evaluations, lossSum / Math.Max(1, lossCount)))
                stopped = "early stopping";
            lossSum = 0;
            lossCount = 0;
            if (stopped is null && options.CheckpointDirectory is not null)
                SaveCheckpoint(epoch + 1, 0, step, samples, 0, 0, evaluationsWithoutImprovement, evaluations, best, bestWeights, optimizer, train, TrainedSeconds(), Elapsed());
        }
        clock.Stop();
        double trainSeconds = TrainedSeconds();

        // 3. Keep the best evaluation's weights whenever optimizer steps came after it (a later, worse evaluation,
        //    Ctrl-C, or an --eval-steps that does not divide the steps). Tensors that were still frozen then (gradual
        //    unfreezing opened them later) go back to their start, which they kept until they opened: the kept model is
        //    exactly the one that was evaluated, and the audit judges what had trained by then.
        if (bestWeights is not null && best is not null && best.Step != step)
        {
            RestoreWeights(bestWeights);
            audit.Restore(model, everTrainable.Except(bestWeights.Keys));
            everTrainable = bestWeights.Keys.ToHashSet(StringComparer.Ordinal);
            if (stopped == "early stopping") progress?.Report(new EarlyStoppingEvent(best.Epoch, best.Step, best.Metrics[options.MetricForBest], options.MetricForBest));
        }
        if (bestWeights is not null) foreach (var t in bestWeights.Values) t.Dispose();
        cache?.Dispose();
        optimizer.Dispose();

        // 4. Prove it: frozen tensors bit-identical, trainable ones changed.
        AuditReport report = audit.Compare(model, everTrainable);
        progress?.Report(new AuditEvent(report));
        model.eval();
        return new TrainingResult(plan, report, evaluations, best, trainSeconds, samples / Math.Max(1e-9, trainSeconds), paddingRatio, cache is not null, stopped, fault);
    }

    private double evaluationSeconds;

    /// <summary>Gradual unfreezing: epoch <paramref name="epoch"/> may make more tensors trainable; the optimizer gains them.</summary>
    private TrainingPlan OpenEpoch(int epoch, TrainingPlan plan, GroupedAdamW optimizer, HashSet<string> everTrainable, int layers)
    {
        TrainingPlan next = StrategyApplier.Apply(model, strategy, epoch, options.LearningRates);
        if (next.TrainableParameters == plan.TrainableParameters) return next;
        optimizer.AddTrainable(next, options.LearningRates, layers);
        everTrainable.UnionWith(next.Trainable.Select(e => e.Key));
        progress?.Report(new PlanEvent(next));
        return next;
    }

    /// <summary>
    /// What a resumed run must share with its checkpoint, by the flag that sets it. A step budget sets the schedule; a
    /// time budget must match too and continues from the checkpoint's training time (the steps it buys can differ).
    /// </summary>
    private Dictionary<string, string> FixedSettings(TaskDataset train) => new()
    {
        ["--epochs"] = options.Epochs.ToString(CultureInfo.InvariantCulture),
        ["--batch-size"] = options.BatchSize.ToString(CultureInfo.InvariantCulture),
        ["--grad-accum"] = options.GradientAccumulationSteps.ToString(CultureInfo.InvariantCulture),
        ["--seed"] = options.Seed.ToString(CultureInfo.InvariantCulture),
        ["--strategy"] = strategy is LoraStrategy lora ? FullName(lora) : strategy.Name,
        ["--steps"] = options.MaxSteps?.ToString(CultureInfo.InvariantCulture) ?? "none",
        ["--seconds"] = options.MaxSeconds?.ToString(CultureInfo.InvariantCulture) ?? "none",
        ["training examples"] = train.Count.ToString(CultureInfo.InvariantCulture),
    };

    // LoRA's name leaves out dropout and targets (lora:r=8,alpha=16); a resume must match them too.
    private string FullName(LoraStrategy lora) => FormattableString.Invariant(
        $"{lora.Name},dropout={lora.Options.Dropout},targets={string.Join('+', lora.Options.TargetModules is { Count: > 0 } targets ? targets : model.Encoder.Architecture.LoraTargets)}");

    /// <summary>Writes <c>checkpoint-STEP/</c>: the model, then the state to continue at <paramref name="epoch"/>, <paramref name="batch"/>.</summary>
    private void SaveCheckpoint(int epoch, int batch, int step, long samples, double lossSum, int lossCount, int withoutImprovement,
        List<EvaluationEvent> evaluations, EvaluationEvent? best, Dictionary<string, Tensor>? bestWeights, GroupedAdamW optimizer, TaskDataset train, double trainSeconds, TimeSpan elapsed)
    {
        using var scope = NewDisposeScope();
        var checkpoint = new TrainingCheckpoint
        {
            Epoch = epoch, Batch = batch, Step = step, Samples = samples, LossSum = lossSum, LossCount = lossCount,
            EvaluationsWithoutImprovement = withoutImprovement, Evaluations = evaluations,
            BestIndex = best is null ? null : evaluations.IndexOf(best), Fixed = FixedSettings(train),
            Optimizer = optimizer.States().ToDictionary(s => s.Key, s => (s.Value.Step, s.Value.ExpAvg.cpu(), s.Value.ExpAvgSq.cpu())),
            RandomState = torch.get_rng_state(), BestWeights = bestWeights?.ToDictionary(w => w.Key, w => w.Value.cpu()),
            TrainSeconds = trainSeconds, ElapsedSeconds = elapsed.TotalSeconds, Adapters = Lora.LoraInjector.AdapterState(model) is { Count: > 0 } layers ? layers : null,
        };
        checkpoint.Save(options.CheckpointDirectory!, directory =>
        {
            ModelWriter!(directory);
            progress?.Report(new CheckpointWritingEvent(step, directory)); // the record so far joins the checkpoint
        }, options.SaveTotalLimit);
        progress?.Report(new CheckpointEvent(step, TrainingCheckpoint.DirectoryOf(options.CheckpointDirectory!, step)));
    }

    /// <summary>
    /// One forward and backward pass; gradients accumulate in the parameters, scaled by <paramref name="scale"/>
    /// (1 / accumulation steps, so that N micro-batches add up to the mean over their union). Returns the batch loss.
    /// The frozen-feature cache is this one branch: the head reads cached features instead of running the encoder.
    /// </summary>
    internal double ForwardBackward(Batch batch, FeatureCache? cache, TaskType task, double scale)
    {
        using var scope = NewDisposeScope();
        Tensor targets = batch.Targets.to(device);
        Tensor logits;
        if (cache is not null)
        {
            var (features, mask) = cache.Features(batch.Indices, device);
            logits = model.Head.call(features, mask);
        }
        else
        {
            using var autocast = Autocast.Enter(options.Precision);
            logits = model.call(batch.InputIds.to(device), batch.TokenTypeIds.to(device), batch.AttentionMask.to(device));
        }
        Tensor loss = task.Loss(logits, targets);
        using (Scalar factor = scale.ToScalar()) loss.mul(factor).backward();
        return loss.item<float>();
    }

    /// <summary>
    /// The loss scale of batch <paramref name="batch"/> of <paramref name="batches"/> when gradients accumulate over
    /// <paramref name="accumulation"/> batches: one over the size of its group, so that the last, shorter group of an
    /// epoch averages its own batches instead of being divided by the full count.
    /// </summary>
    internal static double AccumulationScale(int batch, int batches, int accumulation)
    {
        int groupStart = batch / accumulation * accumulation;
        return 1.0 / Math.Min(accumulation, batches - groupStart);
    }

    /// <summary>Evaluates, records the event, keeps a copy of the trainable weights when best; true when patience ran out.</summary>
    private bool EvaluateAndKeepBest(TaskDataset eval, FeatureCache? evalCache, int epoch, int step, ref EvaluationEvent? best, ref Dictionary<string, Tensor>? bestWeights,
        ref int withoutImprovement, List<EvaluationEvent> evaluations, double trainLoss)
    {
        var clock = Stopwatch.StartNew();
        EvaluationOutput output = Evaluator.Run(model, eval, options.BatchSize, device, precision: options.Precision, features: evalCache);
        evaluationSeconds += clock.Elapsed.TotalSeconds;
        double value = output.Metrics.TryGetValue(options.MetricForBest, out double v) ? v
            : throw new SharpTuneException($"--metric '{options.MetricForBest}' is not computed for the {eval.Task} task; available: {string.Join(", ", output.Metrics.Keys)}.");
        bool isBest = best is null || MetricNames.IsBetter(options.MetricForBest, value, best.Metrics[options.MetricForBest]);
        var evaluation = new EvaluationEvent(epoch, step, trainLoss, output.Metrics, isBest) { Output = output };
        evaluations.Add(evaluation);
        progress?.Report(evaluation);
        if (isBest)
        {
            best = evaluation;
            withoutImprovement = 0;
            if (bestWeights is not null) foreach (var t in bestWeights.Values) t.Dispose();
            bestWeights = CopyTrainableWeights();
            return false;
        }
        withoutImprovement++;
        return options.EarlyStoppingPatience is { } patience && withoutImprovement >= patience;
    }

    private double LearningRateFactor(int step, int totalSteps)
    {
        int warmup = (int)Math.Ceiling(options.WarmupRatio * totalSteps);
        if (step < warmup) return (step + 1.0) / warmup;
        double progressAfterWarmup = (step - warmup) / (double)Math.Max(1, totalSteps - warmup);
        return options.Schedule switch
        {
            LearningRateSchedule.Linear => Math.Max(0, 1 - progressAfterWarmup),
            LearningRateSchedule.Cosine => 0.5 * (1 + Math.Cos(Math.PI * progressAfterWarmup)),
            _ => 1,
        };
    }

    private string? DiskCacheDirectory() => options.DiskFeatureCache ? options.FeatureCacheDirectory ?? FeatureCache.DefaultDirectory : null;

    // Only the frozen strategy keeps every backbone tensor frozen at every epoch (gradual starts frozen, then opens).
    private bool BackboneFrozenThroughout(TrainingPlan plan) => !plan.BackboneTrains && strategy is FrozenStrategy;

    // Only trainable tensors can differ from their start, so only they need keeping for early stopping.
    private Dictionary<string, Tensor> CopyTrainableWeights()
    {
        using var noGrad = no_grad();
        return model.named_parameters().Where(p => p.parameter.requires_grad)
            .ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope());
    }

    private void RestoreWeights(Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in model.named_parameters())
            if (weights.TryGetValue(name, out var saved)) parameter.copy_(saved);
    }
}
