using System.ComponentModel;
using System.Globalization;
using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Lora;
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

internal sealed class TrainSettings : FineTuneSettings
{
    [CommandOption("--eval <FILE>")]
    [Description("Evaluation data, evaluated after every epoch (or every --eval-steps); its labels must occur in the training data.")]
    public string? Eval { get; set; }

    [CommandOption("--out <RUN_DIR>")]
    [Description("Run directory (required unless --resume): the model (Hugging Face layout), parameters.md, metrics.jsonl, audit.md, training.png, summary.json.")]
    public string? Out { get; set; }

    [CommandOption("--save-steps <N>")]
    [Description("Write a checkpoint to resume from (RUN_DIR/checkpoint-STEP/: model, optimizer moments, position, random state, best so far) every N optimizer steps and at every epoch end.")]
    public int? SaveSteps { get; set; }

    [CommandOption("--save-total-limit <K>")]
    [Description("Keep only the newest K checkpoints.")]
    public int? SaveTotalLimit { get; set; }

    [CommandOption("--resume <RUN_DIR>")]
    [Description("Continue the newest checkpoint of RUN_DIR (trained with --save-steps; any strategy, text or token task) and save the run there: give the same data, --epochs, --batch-size, --grad-accum, --seed and --strategy (--lr may change). Ends with the weights of an uninterrupted run.")]
    public string? Resume { get; set; }

    [CommandOption("--overwrite")]
    [Description("Replace an existing, non-empty --out. The new run takes its place as a whole once it is saved; until then the old one stays intact. (A train already writing the same directory is never replaced: the second one fails at once.)")]
    public bool Overwrite { get; set; }

    [CommandOption("--strategy <STRATEGY>")]
    [Description("What trains: full | frozen | top:K | bitfit | lora or lora:r=8,alpha=16,dropout=0.1,targets=query+value | gradual.")]
    [DefaultValue("full")]
    public string Strategy { get; set; } = "full";

    [CommandOption("--lr <RATE>")]
    [Description("Learning rate of the top layer. Default: the strategy's (full 1e-4, top:K 1e-4, gradual 1e-4, lora 5e-4, bitfit 1e-3, frozen 1e-2).")]
    public double? LearningRate { get; set; }

    [CommandOption("--head-lr <RATE>")]
    [Description("Learning rate of the head. Default: the larger of 1e-3 and --lr (a new head learns faster than the pretrained layers).")]
    public double? HeadLearningRate { get; set; }

    [CommandOption("--layer-lr-decay <FACTOR>")]
    [Description("Layer-wise decay, above 0 and at most 1: each layer below the top gets this times the rate of the one above.")]
    [DefaultValue(1.0)]
    public double LayerDecay { get; set; } = 1.0;

    [CommandOption("--grad-accum <N>")]
    [Description("Batches per optimizer step.")]
    [DefaultValue(1)]
    public int GradientAccumulation { get; set; } = 1;

    [CommandOption("--warmup-ratio <RATIO>")]
    [DefaultValue(0.1)]
    public double WarmupRatio { get; set; } = 0.1;

    [CommandOption("--schedule <SCHEDULE>")]
    [Description("linear | cosine | constant (after warm-up).")]
    [DefaultValue("linear")]
    public string Schedule { get; set; } = "linear";

    [CommandOption("--weight-decay <DECAY>")]
    [Description("AdamW weight decay, on weight matrices only.")]
    [DefaultValue(0.01)]
    public double WeightDecay { get; set; } = 0.01;

    [CommandOption("--max-grad-norm <NORM>")]
    [Description("Gradient-norm clipping; 0 turns it off.")]
    [DefaultValue(1.0)]
    public double MaxGradNorm { get; set; } = 1.0;

    [CommandOption("--eval-steps <N>")]
    [Description("Evaluate every N optimizer steps. Default: once per epoch.")]
    public int? EvalSteps { get; set; }

    [CommandOption("--patience <N>")]
    [Description("Stop after N evaluations without improvement of --metric and keep the best weights.")]
    public int? Patience { get; set; }

    [CommandOption("--metric <NAME>")]
    [Description("Metric that picks the best evaluation: loss, or one the task computes (single: accuracy, macro_f1, mcc; multi: macro_f1, micro_f1, " +
        "subset_accuracy; regression: pearson, spearman, mse; token: token_accuracy, entity_f1, entity_precision, entity_recall, macro_f1).")]
    [DefaultValue("loss")]
    public string Metric { get; set; } = "loss";

    [CommandOption("--no-cache")]
    [Description("Do not cache a frozen backbone's features (run the encoder on every step).")]
    public bool NoCache { get; set; }

    [CommandOption("--log-steps <N>")]
    [Description("Write the running train loss to metrics.jsonl every N optimizer steps.")]
    [DefaultValue(10)]
    public int LogSteps { get; set; } = 10;
}

/// <summary>sharptune train: fine-tunes a pretrained encoder with a new head and records the run.</summary>
internal sealed class TrainCommand(IAnsiConsole console) : Command<TrainSettings>
{
    public override int Execute(CommandContext context, TrainSettings settings, CancellationToken cancellationToken)
    {
        // Everything that can be checked without reading data or weights is checked first.
        Strategy strategy = Strategy.Parse(settings.Strategy);
        TaskType? task = CommandSupport.ParseTask(settings.Task);
        string output = RunDirectory(settings);
        string? resumeFrom = settings.Resume is null ? null : TrainingCheckpoint.Newest(settings.Resume);
        TrainingOptions options = Options(settings, strategy, output, resumeFrom).Validate();
        MetricNames.HigherIsBetter(settings.Metric);
        if (settings.Model is not null) CommandSupport.RequireDirectory(settings.Model, "--model");
        CommandSupport.RequireFile(settings.Train, "--train");
        if (settings.Eval is not null) CommandSupport.RequireFile(settings.Eval, "--eval");
        // One process at a time trains into a run directory: a second one fails here, at once (the lock is released when
        // this process ends, however it ends).
        using var runLock = DirectoryLock.Acquire(output, settings.Resume is null ? "--out" : "--resume");
        // The run is written into a temporary sibling and swapped into place at the end: an existing --out is never
        // overwritten without --overwrite (refused here, before any data is read), and survives any failure until then.
        // A resumed run replaces its own directory.
        using var run = StagedDirectory.Begin(output, settings.Overwrite || resumeFrom is not null);
        bool replacing = resumeFrom is null && Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any();
        // Replacing a run: its checkpoints are written into the run being assembled, never beside the old run's, which
        // stays as it was until the swap (and a killed run leaves it so: --resume then continues the old run, if at all).
        if (replacing && options.CheckpointDirectory is not null) options = options with { CheckpointDirectory = run.Path };

        bool token = CommandSupport.IsTokenTask(task, settings.Train);
        // A saved run (a checkpoint to resume, or --model RUN_DIR) brings its head and labels; otherwise a new head goes on the encoder.
        string? savedRun = resumeFrom ?? (settings.Model is not null && File.Exists(Path.Combine(settings.Model, ClassifierCheckpoint.SettingsFile)) ? settings.Model : null);
        int maxLength = settings.MaxLength ?? (settings.Model is null ? 128
            : Math.Min(128, Architectures.LoadConfig(Path.Combine(settings.Model, "config.json")).MaxInputLength));
        using Prepared prepared = token ? PrepareTokens(settings, maxLength, savedRun) : PrepareTexts(settings, task, maxLength, savedRun);
        TaskModel classifier = prepared.Run.Model;
        // LoRA adapters are trained against the pretrained model (a resumed checkpoint names it in its adapter/); a
        // continued run's adapters sit on its saved, merged weights.
        if (resumeFrom is null && savedRun is not null) classifier.BaseModel = Path.GetFullPath(savedRun);
        if (savedRun is not null) maxLength = classifier.MaxLength;
        if (savedRun is null) console.MarkupLineInterpolated($"Model: {settings.Model ?? "packaged all-MiniLM-L6-v2"}, head {prepared.Head}, strategy {strategy.Name}.");
        else console.MarkupLineInterpolated($"Model: {(resumeFrom is not null ? "resuming" : "continuing")} {savedRun}, its head {prepared.Head} and labels, strategy {strategy.Name}.");
        if (replacing) console.MarkupLineInterpolated($"[yellow]--overwrite: {output} will be replaced once this run is saved.{(settings.SaveSteps is null ? "" : " Its checkpoints are written into the new run as it is assembled: if this run is killed, it cannot be resumed.")}[/]");

        var recorder = new RunRecorder(run.Path, settings.LogSteps);
        var display = new ConsoleProgress(console);
        var progress = new BothProgress(display, recorder);
        // The first Ctrl+C stops training after the current batch and saves what was trained; a second one ends the process.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (stop.IsCancellationRequested) return;
            e.Cancel = true;
            stop.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        TrainingResult result;
        try
        {
            result = display.Run(() => classifier.Fit(prepared.Run.Train, prepared.Run.Eval, strategy, options, progress, stop.Token));
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        if (result.Stopped == "cancelled") console.MarkupLine("[yellow]Training was cancelled; saving what was trained so far.[/]");
        if (result.Fault is not null) console.MarkupLineInterpolated($"[red]Training stopped: {result.Stopped}.[/] Saving those weights; a lower --lr may help.");

        bool adapter = strategy is LoraStrategy;
        // The adapters as PEFT saves them (adapter/), beside the merged weights WriteFiles saves.
        if (adapter) classifier.WriteAdapterFiles(Path.Combine(run.Path, PeftAdapter.RunSubdirectory), classifier.BaseModel);
        classifier.WriteFiles(run.Path);
        string chart = recorder.WriteCharts();
        string summary = recorder.WriteSummary(result, SummaryExtras(settings, options, prepared, maxLength));
        if (!replacing) TrainingCheckpoint.MoveAll(output, run.Path); // the checkpoints written during training join the run
        run.Commit();

        console.MarkupLineInterpolated(
            $"Trained in {result.TrainSeconds:F1} s ({result.SamplesPerSecond:F1} samples/s){(result.UsedFeatureCache ? ", head on cached features" : "")}.");
        if (result.BestEvaluation is { } best)
            console.MarkupLineInterpolated($"Kept the weights of epoch {best.Epoch + 1}, step {best.Step} ({settings.Metric} {best.Metrics[settings.Metric]:F4}).");
        var files = new Table().Border(TableBorder.Rounded).Title($"Run directory {Markup.Escape(Path.GetFullPath(output))}")
            .AddColumn("file").AddColumn("what");
        files.AddRow("config.json, model.safetensors, vocab.txt", "the model, Hugging Face layout (load with --model)");
        files.AddRow(ClassifierCheckpoint.SettingsFile, "head, task and strategy");
        if (adapter) files.AddRow(PeftAdapter.RunSubdirectory + "/", "the LoRA adapters and head as a PEFT adapter (--model BASE --adapter DIR; Python: PeftModel.from_pretrained)");
        files.AddRow(RunRecorder.ParametersMarkdown + ", " + RunRecorder.ParametersJson, "parameter table");
        files.AddRow(RunRecorder.MetricsFile, "train loss every " + settings.LogSteps.ToString(CultureInfo.InvariantCulture) + " steps and every evaluation");
        files.AddRow(RunRecorder.AuditMarkdown + ", " + RunRecorder.AuditJson, "freeze audit");
        files.AddRow(Path.GetFileName(chart), "loss and metric curves");
        files.AddRow(Path.GetFileName(summary), "run figures");
        console.Write(files);
        // A NaN or infinity stopped training (3), or the weights are not what the strategy said (2): the run is kept,
        // but the exit code says so.
        if (result.Fault is not null) return 3;
        return result.Audit.Passed ? 0 : 2;
    }

    // --out, or the run being resumed.
    private static string RunDirectory(TrainSettings s)
    {
        if (s.Resume is null)
            return string.IsNullOrWhiteSpace(s.Out) ? throw new SharpTuneException("--out is required: the run directory to write.") : s.Out;
        if (string.IsNullOrWhiteSpace(s.Resume)) throw new SharpTuneException("--resume must name the run directory to continue.");
        CommandSupport.RequireDirectory(s.Resume, "--resume");
        if (s.Model is not null) throw new SharpTuneException("--resume continues the checkpoint's model; do not give --model.");
        if (s.Out is not null && Path.GetFullPath(s.Out) != Path.GetFullPath(s.Resume))
            throw new SharpTuneException($"--resume saves into the run it continues ({s.Resume}); --out {s.Out} differs.");
        return s.Resume;
    }

    /// <summary>A saved run or checkpoint with its head and labels; the training data's labels must be among them.</summary>
    private static TextClassifier ContinueRun(string directory, LoadedData train, int? maxLength)
    {
        TaskModel loaded = TaskModel.Load(directory);
        if (loaded is not TextClassifier classifier)
        {
            loaded.Dispose();
            throw new SharpTuneException($"{directory}: the saved run is a token-classification model; the training data {train.Path} is not tagged (give CoNLL or tokens/tags data).");
        }
        try
        {
            if (classifier.Task != train.Task)
                throw new SharpTuneException($"{directory}: the saved run is a {classifier.Task} model; the training data is {train.Task}.");
            if (train.Task != TaskType.Regression) classifier.Labels.Check(train);
            if (maxLength is { } m && m != classifier.MaxLength)
                throw new SharpTuneException($"{directory}: the saved run reads {classifier.MaxLength} tokens; --max-length {m} differs.");
            return classifier;
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    /// <summary>A saved token run or checkpoint with its head and tags; the training data's tags must be among them.</summary>
    private static TokenTagger ContinueTagger(string directory, LoadedTokenData train, int? maxLength, int? stride)
    {
        TaskModel loaded = TaskModel.Load(directory, stride);
        if (loaded is not TokenTagger tagger)
        {
            loaded.Dispose();
            throw new SharpTuneException($"{directory}: the saved run classifies whole texts (task {loaded.Task.Name}); the training data {train.Path} is tagged.");
        }
        try
        {
            TokenDataset.CheckTags(train.Sentences, tagger.Labels, train.Path);
            if (maxLength is { } m && m != tagger.MaxLength)
                throw new SharpTuneException($"{directory}: the saved run reads {tagger.MaxLength} tokens; --max-length {m} differs.");
            return tagger;
        }
        catch
        {
            tagger.Dispose();
            throw;
        }
    }

    private static TrainingOptions Options(TrainSettings s, Strategy strategy, string output, string? resumeFrom)
    {
        LearningRateSchedule schedule = s.Schedule.ToLowerInvariant() switch
        {
            "linear" => LearningRateSchedule.Linear,
            "cosine" => LearningRateSchedule.Cosine,
            "constant" => LearningRateSchedule.Constant,
            _ => throw new SharpTuneException($"--schedule must be linear, cosine or constant, got '{s.Schedule}'."),
        };
        if (s.MaxGradNorm < 0) throw new SharpTuneException($"--max-grad-norm must not be negative, got {s.MaxGradNorm}.");
        return new TrainingOptions
        {
            Epochs = s.Epochs,
            BatchSize = s.BatchSize,
            GradientAccumulationSteps = s.GradientAccumulation,
            LearningRates = new LearningRates(s.LearningRate ?? strategy.DefaultLearningRate, s.HeadLearningRate, s.LayerDecay),
            WeightDecay = s.WeightDecay,
            WarmupRatio = s.WarmupRatio,
            Schedule = schedule,
            MaxGradNorm = s.MaxGradNorm == 0 ? null : s.MaxGradNorm,
            EvalEverySteps = s.EvalSteps,
            EarlyStoppingPatience = s.Patience,
            MetricForBest = s.Metric,
            Seed = s.Seed,
            CacheFrozenFeatures = !s.NoCache,
            Device = s.Device,
            Precision = Models.Precisions.Parse(s.Precision),
            CheckpointDirectory = s.SaveSteps is null ? null : output,
            SaveEverySteps = s.SaveSteps,
            SaveTotalLimit = s.SaveTotalLimit,
            ResumeFrom = resumeFrom,
        };
    }

    /// <summary>The model to train and its encoded data, with what the run summary says about the files.</summary>
    private sealed record Prepared(PreparedTask Run, string Head, int TrainCount, int TrainSkipped, int? EvalCount, int? EvalSkipped) : IDisposable
    {
        public void Dispose() => Run.Dispose();
    }

    private Prepared PrepareTexts(TrainSettings settings, TaskType? task, int maxLength, string? savedRun)
    {
        var (train, eval, labels) = CommandSupport.LoadLabelledFiles(settings.Train, settings.Eval, settings, task, console);
        console.WriteLine($"Data: {train.Examples.Count} training examples from {settings.Train}" +
            (eval is null ? "; no eval data" : $", {eval.Examples.Count} eval examples from {settings.Eval}") +
            $"; task {train.Task}" + (train.Task == TaskType.Regression ? "." : $", {CommandSupport.Describe(labels)}."));
        var data = new TextTaskData(train.Examples, eval?.Examples, labels, train.Task, settings.Train, settings.Eval ?? "eval");
        data.CheckMetric(settings.Metric);
        PreparedTask run = savedRun is not null ? data.Encode(ContinueRun(savedRun, train, settings.MaxLength))
            : data.Prepare(settings.Model, settings.Head ?? data.DefaultHead, maxLength, settings.Seed);
        string head = savedRun is not null ? run.Model.Model.Head.GetType().Name : settings.Head ?? data.DefaultHead;
        return new Prepared(run, head, train.Examples.Count, train.SkippedRows, eval?.Examples.Count, eval?.SkippedRows);
    }

    private Prepared PrepareTokens(TrainSettings settings, int maxLength, string? savedRun)
    {
        var (train, eval, tags) = CommandSupport.LoadTaggedFiles(settings.Train, settings.Eval, settings, console);
        console.WriteLine($"Data: {train.Sentences.Count} training sentences ({train.Sentences.Sum(s => s.Tokens.Count)} words) from {settings.Train}" +
            (eval is null ? "; no eval data" : $", {eval.Sentences.Count} eval sentences from {settings.Eval}") + $"; task token, {CommandSupport.Describe(tags)}.");
        var data = new TokenTaskData(train.Sentences, eval?.Sentences, tags, settings.Stride, settings.Train, settings.Eval ?? "eval");
        data.CheckMetric(settings.Metric);
        PreparedTask run = savedRun is not null ? data.Encode(ContinueTagger(savedRun, train, settings.MaxLength, settings.Stride))
            : data.Prepare(settings.Model, settings.Head ?? data.DefaultHead, maxLength, settings.Seed);
        string head = savedRun is not null ? run.Model.Model.Head.GetType().Name : settings.Head ?? data.DefaultHead;
        return new Prepared(run, head, train.Sentences.Count, train.SkippedSentences, eval?.Sentences.Count, eval?.SkippedSentences);
    }

    private static JsonObject SummaryExtras(TrainSettings s, TrainingOptions options, Prepared prepared, int maxLength) => new()
    {
        ["model"] = s.Model is null ? "packaged:all-MiniLM-L6-v2" : Hub.HubModelId.NameOrPath(s.Model), // a hub model as org/name@commit
        ["model_path"] = s.Model is null ? null : Path.GetFullPath(s.Model),
        ["head"] = prepared.Head,
        ["task"] = prepared.Run.Model.Task.Name,
        ["labels"] = new JsonArray(prepared.Run.Model.Labels.Names.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
        ["train_file"] = s.Train,
        ["train_examples"] = prepared.TrainCount,
        ["train_skipped_rows"] = prepared.TrainSkipped,
        ["eval_file"] = s.Eval,
        ["eval_examples"] = prepared.EvalCount,
        ["eval_skipped_rows"] = prepared.EvalSkipped,
        ["options"] = new JsonObject
        {
            ["strategy"] = s.Strategy, ["epochs"] = s.Epochs, ["lr"] = options.LearningRates.BaseRate, ["head_lr"] = options.LearningRates.EffectiveHeadRate,
            ["layer_lr_decay"] = s.LayerDecay, ["batch_size"] = s.BatchSize, ["grad_accum"] = s.GradientAccumulation,
            ["max_length"] = maxLength, ["stride"] = (prepared.Run.Model as TokenTagger)?.Stride, ["warmup_ratio"] = s.WarmupRatio, ["schedule"] = s.Schedule,
            ["weight_decay"] = s.WeightDecay, ["max_grad_norm"] = s.MaxGradNorm, ["eval_steps"] = s.EvalSteps,
            ["patience"] = s.Patience, ["metric"] = s.Metric, ["seed"] = s.Seed, ["device"] = s.Device, ["cache"] = !s.NoCache,
        },
    };

    /// <summary>Sends every training event to the console display and the run recorder.</summary>
    private sealed class BothProgress(IProgress<TrainingEvent> first, IProgress<TrainingEvent> second) : IProgress<TrainingEvent>
    {
        public void Report(TrainingEvent value)
        {
            second.Report(value);
            first.Report(value);
        }
    }
}
