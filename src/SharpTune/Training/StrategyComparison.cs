using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Strategies;
using TorchSharp;

namespace SharpTune.Training;

/// <summary>How much training each run of a comparison gets.</summary>
public enum BudgetKind
{
    /// <summary>The same number of epochs for every strategy (<see cref="TrainingOptions.Epochs"/>), unless
    /// <see cref="ComparisonOptions.StrategyEpochs"/> gives a strategy its own; each run keeps its best epoch.</summary>
    Epochs,
    /// <summary>The same wall-clock training time (<see cref="ComparisonOptions.Seconds"/>): a strategy whose epochs are
    /// cheap (frozen, on cached features) gets many of them. The rate is constant after warm-up; see <see cref="TrainingOptions.MaxSeconds"/>.</summary>
    Time,
    /// <summary>The same number of optimizer steps (<see cref="ComparisonOptions.Steps"/>): every run sees the same examples.</summary>
    Steps,
}

/// <summary>What a <see cref="StrategyComparison"/> runs: the same model, head, data, budget and seeds under each strategy.</summary>
public sealed record ComparisonOptions
{
    /// <summary>Epochs a time-budgeted run may take at most: far more than any budget allows, so the time decides.</summary>
    public const int TimeBudgetEpochLimit = 100_000;

    /// <summary>The strategies, run one after another in this order. Their names must differ.</summary>
    public IReadOnlyList<Strategy> Strategies { get; init; } = [];
    /// <summary>Pretrained Hugging Face model directory; null: the packaged all-MiniLM-L6-v2.</summary>
    public string? ModelDirectory { get; init; }
    /// <summary>The model as the comparison's records name it: <c>org/name@commit</c> for a snapshot of the hub cache, else
    /// the directory's full path (<see cref="Hub.HubModelId.NameOrPath"/>), or <c>packaged:all-MiniLM-L6-v2</c>.</summary>
    public string ModelName => ModelDirectory is null ? "packaged:all-MiniLM-L6-v2" : Hub.HubModelId.NameOrPath(ModelDirectory);
    /// <summary>
    /// Head name (mean, cls, pooled, token or a registered type); null: the data's default head (<see cref="TaskData.DefaultHead"/>:
    /// mean for texts, token for tagged sentences).
    /// </summary>
    public string? Head { get; init; }
    /// <summary>The task.</summary>
    public TaskType Task { get; init; } = TaskType.SingleLabel;
    /// <summary>Texts are truncated to this many tokens.</summary>
    public int MaxLength { get; init; } = 128;
    /// <summary>
    /// Training options shared by every run. Their base learning rate is replaced per run: by
    /// <see cref="LearningRate"/> when set, else by the strategy's <see cref="Strategy.DefaultLearningRate"/>.
    /// <see cref="TrainingOptions.MetricForBest"/> is replaced by <see cref="Metric"/>, the seed by each of
    /// <see cref="SeedValues"/>, and the epochs by the <see cref="Budget"/>.
    /// </summary>
    public TrainingOptions Training { get; init; } = new();
    /// <summary>One learning rate for every strategy; null: each strategy's default (a frozen backbone's head needs a far larger one than full fine-tuning).</summary>
    public double? LearningRate { get; init; }
    /// <summary>The metric that picks each run's best epoch and the best strategy. Null: the task's <see cref="TaskType.DefaultMetric"/>.</summary>
    public string? Metric { get; init; }
    /// <summary>How the runs' training is made equal.</summary>
    public BudgetKind Budget { get; init; } = BudgetKind.Epochs;
    /// <summary>
    /// With <see cref="BudgetKind.Epochs"/>: epochs per strategy, keyed by its name (<c>lora:r=8,alpha=16</c>) or the part
    /// before ':' (<c>lora</c>, <c>top</c>); strategies not named get <see cref="TrainingOptions.Epochs"/>.
    /// </summary>
    public IReadOnlyDictionary<string, int> StrategyEpochs { get; init; } = new Dictionary<string, int>();
    /// <summary>With <see cref="BudgetKind.Time"/>: each run's training time in seconds.</summary>
    public double? Seconds { get; init; }
    /// <summary>With <see cref="BudgetKind.Steps"/>: each run's optimizer steps.</summary>
    public int? Steps { get; init; }
    /// <summary>Runs per strategy, seeded <see cref="TrainingOptions.Seed"/>, +1, +2 …</summary>
    public int Seeds { get; init; } = 1;
    /// <summary>How far below the best mean a strategy may be and still be recommended; null: the best's standard deviation (see <see cref="Recommendation.Choose"/>).</summary>
    public double? Tolerance { get; init; }

    /// <summary>The metric in use: <see cref="Metric"/> or the task's default.</summary>
    public string MetricOrDefault => Metric ?? Task.DefaultMetric;

    /// <summary>The seeds, one run per strategy each.</summary>
    public IReadOnlyList<int> SeedValues => Enumerable.Range(0, Seeds).Select(i => Training.Seed + i).ToList();

    /// <summary>The base learning rate of <paramref name="strategy"/>'s runs.</summary>
    public double RateFor(Strategy strategy) => LearningRate ?? strategy.DefaultLearningRate;

    /// <summary>The epochs of <paramref name="strategy"/> under an epochs budget.</summary>
    public int EpochsFor(Strategy strategy) =>
        StrategyEpochs.TryGetValue(strategy.Name, out int exact) ? exact
        : StrategyEpochs.TryGetValue(Kind(strategy), out int byKind) ? byKind : Training.Epochs;

    /// <summary>The training options of one run: the strategy's rate, the metric, the seed and the budget.</summary>
    public TrainingOptions TrainingFor(Strategy strategy, int seed)
    {
        TrainingOptions run = Training with
        {
            LearningRates = Training.LearningRates with { BaseRate = RateFor(strategy) },
            MetricForBest = MetricOrDefault,
            Seed = seed,
        };
        return Budget switch
        {
            BudgetKind.Time => run with { Epochs = TimeBudgetEpochLimit, MaxSeconds = Seconds, Schedule = LearningRateSchedule.Constant },
            BudgetKind.Steps => run with { Epochs = Steps ?? 1, MaxSteps = Steps }, // every epoch has a step, so that many epochs always suffice
            _ => run with { Epochs = EpochsFor(strategy) },
        };
    }

    /// <summary>The budget in words, e.g. "120 s of training per run" or "3 epochs (frozen 30)".</summary>
    public string BudgetText => Budget switch
    {
        BudgetKind.Time => string.Create(CultureInfo.InvariantCulture, $"time budget: {Seconds:0.###} s of training per run (learning rate constant after warm-up), evaluated at its end"),
        BudgetKind.Steps => string.Create(CultureInfo.InvariantCulture, $"step budget: {Steps} optimizer steps per run, evaluated at its end"),
        _ => string.Create(CultureInfo.InvariantCulture, $"epoch budget: {Training.Epochs} epoch(s)") +
            (StrategyEpochs.Count == 0 ? "" : " (" + string.Join(", ", StrategyEpochs.Select(e => $"{e.Key} {e.Value}")) + ")") + ", best epoch kept",
    };

    private static string Kind(Strategy strategy) => strategy.Name.Split(':')[0];

    /// <summary>Throws a <see cref="SharpTuneException"/> naming the bad option.</summary>
    public ComparisonOptions Validate()
    {
        if (Strategies.Count == 0) throw new SharpTuneException("--strategies: give at least one strategy.");
        var duplicate = Strategies.GroupBy(s => s.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new SharpTuneException($"--strategies: '{duplicate.Key}' is given twice.");
        var sanitised = Strategies.GroupBy(s => StrategyComparison.DirectoryName(s)).FirstOrDefault(g => g.Count() > 1);
        if (sanitised is not null) throw new SharpTuneException($"--strategies: {string.Join(" and ", sanitised.Select(s => s.Name))} would share the run directory '{sanitised.Key}'.");
        if (!Task.Metrics.Contains(MetricOrDefault))
            throw new SharpTuneException($"--metric '{MetricOrDefault}' is not computed for the {Task} task; allowed: {string.Join(", ", Task.Metrics)}.");
        if (LearningRate is { } rate && !(rate > 0)) throw new SharpTuneException($"--lr must be positive, got {rate}.");
        if (Seeds <= 0) throw new SharpTuneException($"--seeds must be positive, got {Seeds}.");
        if (Tolerance is { } tolerance && !(tolerance >= 0 && double.IsFinite(tolerance))) throw new SharpTuneException($"--tolerance must not be negative, got {tolerance}.");
        if (Budget == BudgetKind.Time && Seconds is null) throw new SharpTuneException("--budget time needs --seconds S: the training time each run gets.");
        if (Budget == BudgetKind.Steps && Steps is null) throw new SharpTuneException("--budget steps needs --steps N: the optimizer steps each run takes.");
        if (Budget != BudgetKind.Time && Seconds is not null) throw new SharpTuneException("--seconds applies to --budget time only.");
        if (Budget != BudgetKind.Steps && Steps is not null) throw new SharpTuneException("--steps applies to --budget steps only.");
        if (Budget != BudgetKind.Epochs && StrategyEpochs.Count > 0) throw new SharpTuneException("--strategy-epochs applies to --budget epochs only.");
        foreach (var (key, epochs) in StrategyEpochs)
        {
            if (!Strategies.Any(s => s.Name == key || Kind(s) == key))
                throw new SharpTuneException($"--strategy-epochs: '{key}' is none of the strategies ({string.Join(", ", Strategies.Select(s => s.Name))}).");
            if (epochs <= 0) throw new SharpTuneException($"--strategy-epochs: {key}={epochs}: epochs must be positive.");
        }
        Training.Validate();
        foreach (Strategy strategy in Strategies) TrainingFor(strategy, Training.Seed).Validate();
        return this;
    }
}

/// <summary>One run (one strategy, one seed) of a comparison.</summary>
/// <param name="Strategy">The strategy's name (as the CLI spells it).</param>
/// <param name="LearningRate">The base learning rate the run used.</param>
/// <param name="TrainableParameters">Parameters that trained.</param>
/// <param name="TotalParameters">All parameters of the model (LoRA: adapters included).</param>
/// <param name="TrainablePercent">Trainable over total, in percent.</param>
/// <param name="TrainSeconds">Training wall time (feature caching included, evaluation excluded).</param>
/// <param name="SamplesPerSecond">Training examples per second.</param>
/// <param name="PeakRssBytes">Peak resident memory of the process (VmHWM), or null where /proc/self/status is missing.</param>
/// <param name="PeakRssPerRun">True when the peak was reset before this run (it is then this run's peak, model loading
/// included); false when it could not be reset: then it is the peak so far over the whole process.</param>
/// <param name="RssBeforeBytes">Resident memory (VmRSS) before the model was loaded for this run.</param>
/// <param name="RssAfterBytes">Resident memory after training, before the model was released.</param>
/// <param name="Metrics">The metrics of the best evaluation (the weights saved for this run).</param>
/// <param name="BestEpoch">The 1-based epoch of the best evaluation.</param>
/// <param name="AuditPassed">Whether the freeze audit passed: frozen tensors unchanged, trainable ones changed.</param>
/// <param name="UsedFeatureCache">Whether the head trained on cached frozen features.</param>
/// <param name="FeatureSource">"computed" or "disk" (the features came from an earlier run's disk cache, so the
/// train time holds no encoding); null without a feature cache.</param>
/// <param name="RunDirectory">Where the run's model and record were saved.</param>
/// <param name="Seed">The run's seed.</param>
/// <param name="EpochsTrained">Passes over the training data (fractional when a budget ended mid-epoch).</param>
/// <param name="Steps">Optimizer steps taken.</param>
public sealed record ComparisonRow(string Strategy, double LearningRate, long TrainableParameters, long TotalParameters, double TrainablePercent,
    double TrainSeconds, double SamplesPerSecond, long? PeakRssBytes, bool PeakRssPerRun, long? RssBeforeBytes, long? RssAfterBytes,
    IReadOnlyDictionary<string, double> Metrics, int BestEpoch, bool AuditPassed, bool UsedFeatureCache, string RunDirectory,
    string? FeatureSource = null, int Seed = 42, double EpochsTrained = 1, int Steps = 0)
{
    /// <summary>The value of a metric of the best evaluation, or null when not computed.</summary>
    public double? Metric(string name) => Metrics.TryGetValue(name, out double value) ? value : null;

    /// <summary>Train time per pass over the training data.</summary>
    public double SecondsPerEpoch => TrainSeconds / Math.Max(1e-9, EpochsTrained);
}

/// <summary>The runs of a comparison, their summary per strategy and where the results were written.</summary>
/// <param name="Rows">Finished runs, in the order run (seed by seed, each seed through every strategy).</param>
/// <param name="Summary">Mean ± standard deviation per strategy, the verdict and the recommendation.</param>
/// <param name="Stopped">Why the comparison ended before the last run (e.g. "cancelled during top:2, seed 43"), or null.</param>
/// <param name="JsonPath">compare.json.</param>
/// <param name="MarkdownPath">compare.md.</param>
/// <param name="ChartPath">compare.png (null when there were no rows to draw).</param>
public sealed record ComparisonResult(IReadOnlyList<ComparisonRow> Rows, ComparisonSummary Summary, string? Stopped,
    string JsonPath, string MarkdownPath, string? ChartPath)
{
    /// <summary>The metric that compared the strategies.</summary>
    public string Metric => Summary.Metric;
}

/// <summary>What a comparison reports while it runs.</summary>
public abstract record ComparisonEvent;

/// <summary>A run (a strategy under one seed) starts.</summary>
/// <param name="Index">0-based position of the run.</param>
/// <param name="Count">Number of runs (strategies × seeds).</param>
/// <param name="Strategy">The strategy.</param>
/// <param name="Seed">The run's seed.</param>
/// <param name="LearningRate">Its base learning rate.</param>
/// <param name="RunDirectory">Where its run is saved.</param>
public sealed record StrategyStartedEvent(int Index, int Count, Strategy Strategy, int Seed, double LearningRate, string RunDirectory) : ComparisonEvent;

/// <summary>A training event of the current run.</summary>
public sealed record StrategyTrainingEvent(Strategy Strategy, TrainingEvent Event) : ComparisonEvent;

/// <summary>A run finished: its row has been written to compare.json and compare.md.</summary>
public sealed record StrategyFinishedEvent(int Index, ComparisonRow Row) : ComparisonEvent;

/// <summary>
/// Trains the same pretrained model on the same data with the same budget under several strategies and seeds,
/// one run after another (a fresh model per run, built and fed by the <see cref="TaskData"/>: a <see cref="TextClassifier"/>
/// for texts, a <see cref="TokenTagger"/> for tagged sentences; released afterwards): seed by seed, each
/// seed through every strategy, so that a machine whose load drifts slows every strategy alike. Writes:
/// <list type="bullet">
/// <item><c>&lt;out&gt;/&lt;strategy&gt;/</c> (several seeds: <c>&lt;out&gt;/&lt;strategy&gt;/seed-&lt;seed&gt;/</c>): each run, saved
/// as <c>sharptune train</c> saves it (model + <see cref="RunRecorder"/> files).</item>
/// <item><c>compare.json</c>: every run, the summary per strategy, the verdict, the recommendation, the options and the
/// machine; <c>compare.md</c>: the same as tables and the command line; <c>compare.png</c>: the metric (mean ± standard
/// deviation) against the train time per epoch.</item>
/// </list>
/// The three files are rewritten after each run, so a crash or Ctrl+C keeps every finished run.
/// Cancellation stops the current run (its row is not added) and writes the finished rows.
/// </summary>
public sealed class StrategyComparison(string directory, ComparisonOptions options)
{
    /// <summary>File names of the comparison, in its directory.</summary>
    public const string JsonFile = "compare.json", MarkdownFile = "compare.md", ChartFile = "compare.png";

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
    // Run puts the data's default head in when the options name none.
    private ComparisonOptions options = options.Validate();

    /// <summary>The comparison's directory.</summary>
    public string Directory { get; } = directory;

    /// <summary>The command line that started the comparison, written into compare.md and compare.json (optional).</summary>
    public string? CommandLine { get; init; }

    /// <summary>Facts about the inputs (data files, counts …) written into compare.json under "inputs" (optional).</summary>
    public JsonObject? Inputs { get; init; }

    /// <summary>The run directory name of a strategy: its name with every character but letters, digits, '.', '-' and '_' made '-'.</summary>
    public static string DirectoryName(Strategy strategy)
    {
        var name = new StringBuilder();
        foreach (char c in strategy.Name)
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' ? c : '-');
        return name.ToString().Trim('-');
    }

    /// <summary>Where the run of <paramref name="strategy"/> under <paramref name="seed"/> is saved.</summary>
    public string RunDirectory(Strategy strategy, int seed) => options.Seeds == 1
        ? Path.Combine(Directory, DirectoryName(strategy))
        : Path.Combine(Directory, DirectoryName(strategy), "seed-" + seed.ToString(Invariant));

    /// <summary>Runs every strategy under every seed on <paramref name="train"/>, evaluating on <paramref name="eval"/>, labels <paramref name="labels"/>.</summary>
    public ComparisonResult Run(IReadOnlyList<TextExample> train, IReadOnlyList<TextExample> eval, LabelSet labels,
        IProgress<ComparisonEvent>? progress = null, CancellationToken cancellation = default) =>
        Run(new TextTaskData(train, eval, labels, options.Task), progress, cancellation);

    /// <summary>
    /// Runs every strategy under every seed on <paramref name="data"/> (texts or tagged sentences; its task must be the
    /// options' <see cref="ComparisonOptions.Task"/>), each run on a model the data builds and encodes for itself.
    /// </summary>
    public ComparisonResult Run(TaskData data, IProgress<ComparisonEvent>? progress = null, CancellationToken cancellation = default)
    {
        if (data.Task != options.Task)
            throw new SharpTuneException($"The comparison's task is {options.Task.Name}; the data are for the {data.Task.Name} task.");
        if (data.EvalCount is not > 0) throw new SharpTuneException("A comparison needs evaluation data: the eval set is empty.");
        data.CheckMetric(options.MetricOrDefault);
        options = options with { Head = options.Head ?? data.DefaultHead };
        System.IO.Directory.CreateDirectory(Directory);
        using var runLocks = LockRunDirectories();
        var rows = new List<ComparisonRow>();
        var predictions = new List<float[][]>();
        TaskDataset? evalData = null;
        string? stopped = null;
        string? chart = null;
        int count = options.Strategies.Count * options.Seeds, index = 0;
        ComparisonSummary summary = ComparisonSummary.Compute(rows, predictions, null, options.MetricOrDefault);
        foreach (int seed in options.SeedValues)
        {
            foreach (Strategy strategy in options.Strategies)
            {
                string what = options.Seeds == 1 ? strategy.Name : $"{strategy.Name}, seed {seed}";
                if (cancellation.IsCancellationRequested) { stopped = $"cancelled before {what}"; break; }
                var run = RunOne(index, count, strategy, seed, data, ref evalData, progress, cancellation);
                if (run is null) { stopped = $"cancelled during {what}"; break; }
                rows.Add(run.Value.Row);
                predictions.Add(run.Value.Predictions);
                summary = ComparisonSummary.Compute(rows, predictions, evalData, options.MetricOrDefault, options.Tolerance);
                chart = Write(rows, summary, null);
                progress?.Report(new StrategyFinishedEvent(index, run.Value.Row));
                index++;
            }
            if (stopped is not null) break;
        }
        chart = Write(rows, summary, stopped) ?? chart;
        return new ComparisonResult(rows, summary, stopped, PathOf(JsonFile), PathOf(MarkdownFile), chart);
    }

    /// <summary>
    /// Takes the lock of every run directory (and, with several seeds, of each strategy's directory) before the first run,
    /// as <c>train</c> takes its own: a train or another compare writing one of them stops this comparison before it
    /// replaces anything, and cannot start into one while it runs.
    /// </summary>
    private Locks LockRunDirectories()
    {
        var locks = new Locks();
        try
        {
            foreach (Strategy strategy in options.Strategies)
            {
                if (options.Seeds > 1) locks.Add(Checkpoints.DirectoryLock.Acquire(Path.Combine(Directory, DirectoryName(strategy))));
                foreach (int seed in options.SeedValues) locks.Add(Checkpoints.DirectoryLock.Acquire(RunDirectory(strategy, seed)));
            }
            return locks;
        }
        catch
        {
            locks.Dispose();
            throw;
        }
    }

    private sealed class Locks : List<Checkpoints.DirectoryLock>, IDisposable
    {
        public void Dispose()
        {
            foreach (var held in this) held.Dispose();
            Clear();
        }
    }

    /// <summary>One run: fresh model → train → save like <c>train</c> → row and eval predictions. Null when cancelled.
    /// The first run also keeps the encoded eval set in <paramref name="evalData"/> (the targets the significance test scores against).</summary>
    private (ComparisonRow Row, float[][] Predictions)? RunOne(int index, int count, Strategy strategy, int seed, TaskData data,
        ref TaskDataset? evalData, IProgress<ComparisonEvent>? progress, CancellationToken cancellation)
    {
        TrainingOptions training = options.TrainingFor(strategy, seed);
        double rate = training.LearningRates.BaseRate;
        string runDirectory = RunDirectory(strategy, seed);
        progress?.Report(new StrategyStartedEvent(index, count, strategy, seed, rate, runDirectory));

        // Release the previous run's tensors before measuring this one.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        bool perRun = ProcessMemory.ResetPeak();
        long? before = ProcessMemory.Read("VmRSS");

        using var run = Checkpoints.StagedDirectory.Begin(runDirectory); // the run directory appears whole, or not at all
        using PreparedTask prepared = data.Prepare(options.ModelDirectory, options.Head!, options.MaxLength, seed);
        // A frozen head makes thousands of cheap epochs under a time budget: a metrics.jsonl line (and its flush) per epoch,
        // not per 10 steps, keeps the record's own cost out of the training time it is measured by.
        int stepsPerEpoch = (prepared.Train.Count + training.BatchSize - 1) / training.BatchSize;
        var recorder = new RunRecorder(run.Path, strategy is FrozenStrategy ? Math.Max(10, stepsPerEpoch) : 10);
        var forward = new Progress(strategy, recorder, progress);
        TrainingResult result = prepared.Model.Fit(prepared.Train, prepared.Eval, strategy, training, forward, cancellation);
        long? after = ProcessMemory.Read("VmRSS");
        long? peak = ProcessMemory.Read("VmHWM");
        if (result.Stopped == "cancelled") return null;

        prepared.Model.WriteFiles(run.Path);
        recorder.WriteCharts();
        recorder.WriteSummary(result, new JsonObject
        {
            ["model"] = options.ModelName,
            ["model_path"] = options.ModelDirectory is null ? null : Path.GetFullPath(options.ModelDirectory),
            ["head"] = options.Head,
            ["task"] = data.Task.Name,
            ["max_length"] = options.MaxLength,
            ["stride"] = (prepared.Model as TokenTagger)?.Stride,
            ["lr"] = rate,
            ["seed"] = seed,
            ["budget"] = options.BudgetText,
            ["load_average_at_end"] = ProcessMemory.LoadAverage(), // other work on the machine slows a time-budgeted run
            ["comparison"] = Path.GetFullPath(PathOf(JsonFile)),
        });
        run.Commit();
        EvaluationEvent best = result.BestEvaluation ?? throw new SharpTuneException($"strategy {strategy.Name}: training produced no evaluation.");
        float[][] probabilities = best.Output?.Probabilities ?? throw new SharpTuneException($"strategy {strategy.Name}: the best evaluation kept no predictions.");
        double samples = Math.Round(result.SamplesPerSecond * result.TrainSeconds); // a count: undo the rate's rounding
        var row = new ComparisonRow(strategy.Name, rate, result.Plan.TrainableParameters, result.Plan.TotalParameters, result.Plan.TrainablePercent,
            result.TrainSeconds, result.SamplesPerSecond, peak, perRun, before, after,
            best.Metrics.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal)).ToDictionary(),
            best.Epoch + 1, result.Audit.Passed, result.UsedFeatureCache, runDirectory, forward.FeatureSource,
            seed, samples / Math.Max(1, prepared.Train.Count), forward.Steps);
        evalData ??= prepared.Eval;
        return (row, probabilities);
    }

    private string PathOf(string fileName) => Path.Combine(Directory, fileName);

    /// <summary>
    /// Reads a comparison back from its directory's compare.json (the one reader of the file): the runs, the summary
    /// per strategy, the verdict's test and the recommendation as they were written.
    /// </summary>
    public static ComparisonResult Load(string directory)
    {
        string path = Path.Combine(directory, JsonFile);
        JsonObject json = StrictJson.ReadObject(path);
        T Get<T>(JsonNode? node, string key)
        {
            try { return node![key]!.GetValue<T>(); }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
            { throw new SharpTuneException($"{path}: \"{key}\" is missing or not a {typeof(T).Name}."); }
        }
        T? Optional<T>(JsonNode? node, string key) where T : struct => node?[key] is JsonValue value && value.TryGetValue(out T v) ? v : null;

        string metric = Get<string>(json, "metric");
        var rows = new List<ComparisonRow>();
        foreach (JsonNode? row in json["rows"] as JsonArray ?? throw new SharpTuneException($"{path}: \"rows\" is missing or not an array."))
        {
            var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var (name, value) in row?["metrics"] as JsonObject ?? [])
                metrics[name] = value is JsonValue v && v.TryGetValue(out double d) ? d : double.NaN;
            rows.Add(new ComparisonRow(Get<string>(row, "strategy"), Get<double>(row, "lr"), Get<long>(row, "trainable_parameters"),
                Get<long>(row, "total_parameters"), Get<double>(row, "trainable_percent"), Get<double>(row, "train_seconds"),
                Get<double>(row, "samples_per_second"), Optional<long>(row, "peak_rss_bytes"),
                Get<string>(row, "peak_rss_scope").StartsWith("this run", StringComparison.Ordinal),
                Optional<long>(row, "rss_before_bytes"), Optional<long>(row, "rss_after_bytes"), metrics, Get<int>(row, "best_epoch"),
                Get<bool>(row, "audit_passed"), Get<bool>(row, "used_feature_cache"), Get<string>(row, "run_directory"),
                row?["feature_source"]?.GetValue<string>(), Get<int>(row, "seed"), Get<double>(row, "epochs"), Get<int>(row, "steps")));
        }
        SignificanceTest? test = json["test"] is JsonObject t
            ? new SignificanceTest(Get<string>(t, "better"), Get<string>(t, "other"), metric, Get<double>(t, "difference"), Get<double>(t, "low_2_5"),
                Get<double>(t, "high_97_5"), Get<double>(t, "p_value"), Get<double>(t, "better_standard_error"), Get<int>(t, "replicates"),
                Get<int>(t, "examples"), Get<int>(t, "better_seeds"), Get<int>(t, "other_seeds"), t["unit"]?.GetValue<string>() ?? Significance.ExampleUnit)
            : null;
        Recommendation? recommendation = json["recommendation"] is JsonObject r
            ? new Recommendation(Get<string>(r, "strategy"), Get<string>(r, "best"), metric, Get<double>(r, "threshold"), Get<string>(r, "threshold_source"),
                Get<string>(r, "reference"), Get<double>(r, "time_per_epoch_ratio"), Optional<double>(r, "peak_memory_ratio"), Get<string>(r, "text"))
            : null;
        string chart = Path.Combine(directory, ChartFile);
        return new ComparisonResult(rows, ComparisonSummary.FromParts(rows, metric, test, recommendation), json["stopped"]?.GetValue<string>(),
            path, Path.Combine(directory, MarkdownFile), File.Exists(chart) ? chart : null);
    }

    /// <summary>Rewrites compare.json, compare.md and (with rows) compare.png; returns the chart's path or null.</summary>
    private string? Write(IReadOnlyList<ComparisonRow> rows, ComparisonSummary summary, string? stopped)
    {
        WriteAtomically(JsonFile, ToJson(rows, summary, stopped).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        WriteAtomically(MarkdownFile, ToMarkdown(rows, summary, stopped));
        if (rows.Count == 0) return null;
        string chart = PathOf(ChartFile);
        AtomicFile.Write(chart, temporary => ComparisonChart.WritePng(temporary, summary));
        return chart;
    }

    private JsonObject ToJson(IReadOnlyList<ComparisonRow> rows, ComparisonSummary summary, string? stopped)
    {
        var training = options.Training;
        string metric = summary.Metric;
        return new JsonObject
        {
            ["command_line"] = CommandLine,
            ["metric"] = metric,
            ["best"] = summary.Best?.Strategy,
            ["winner"] = summary.WinnerIndex is { } w ? summary.Strategies[w].Strategy : null,
            ["verdict"] = summary.Verdict,
            ["test"] = summary.Test is { } t ? new JsonObject
            {
                ["method"] = $"paired bootstrap over the eval {t.Unit}, seeds resampled per strategy",
                ["unit"] = t.Unit,
                ["better"] = t.Better, ["other"] = t.Other, ["difference"] = t.Difference, ["low_2_5"] = t.Low, ["high_97_5"] = t.High,
                ["p_value"] = t.PValue, ["alpha"] = SignificanceTest.Alpha, ["significant"] = t.Significant, ["replicates"] = t.Replicates,
                ["examples"] = t.Examples, ["better_standard_error"] = t.BetterStandardError, ["better_seeds"] = t.BetterSeeds, ["other_seeds"] = t.OtherSeeds,
            } : null,
            ["recommendation"] = summary.Recommendation is { } r ? new JsonObject
            {
                ["strategy"] = r.Strategy, ["best"] = r.Best, ["threshold"] = r.Threshold, ["threshold_source"] = r.ThresholdSource,
                ["reference"] = r.Reference, ["time_per_epoch_ratio"] = r.TimeRatio, ["peak_memory_ratio"] = r.MemoryRatio, ["text"] = r.Text,
            } : null,
            ["stopped"] = stopped,
            ["finished"] = rows.Count,
            ["runs_planned"] = options.Strategies.Count * options.Seeds,
            ["strategies"] = new JsonArray(options.Strategies.Select(s => (JsonNode)JsonValue.Create(s.Name)).ToArray()),
            ["options"] = new JsonObject
            {
                ["model"] = options.ModelName,
                ["model_path"] = options.ModelDirectory is null ? null : Path.GetFullPath(options.ModelDirectory),
                ["head"] = options.Head,
                ["task"] = options.Task.Name,
                ["max_length"] = options.MaxLength,
                ["lr"] = options.LearningRate is { } lr ? lr : "strategy default",
                ["budget"] = options.Budget.ToString().ToLowerInvariant(),
                ["budget_text"] = options.BudgetText,
                ["epochs"] = training.Epochs,
                ["strategy_epochs"] = new JsonObject(options.StrategyEpochs.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))),
                ["seconds"] = options.Seconds,
                ["steps"] = options.Steps,
                ["seeds"] = new JsonArray(options.SeedValues.Select(s => (JsonNode)s).ToArray()),
                ["tolerance"] = options.Tolerance,
                ["batch_size"] = training.BatchSize,
                ["grad_accum"] = training.GradientAccumulationSteps,
                ["weight_decay"] = training.WeightDecay,
                ["warmup_ratio"] = training.WarmupRatio,
                ["schedule"] = options.Budget == BudgetKind.Time ? nameof(LearningRateSchedule.Constant) : training.Schedule.ToString(),
                ["cache_frozen_features"] = training.CacheFrozenFeatures,
                ["precision"] = training.Precision.ToString(),
                ["device"] = training.Device,
            },
            ["inputs"] = Inputs?.DeepClone(),
            ["machine"] = new JsonObject
            {
                ["os"] = RuntimeInformation.OSDescription,
                ["architecture"] = RuntimeInformation.ProcessArchitecture.ToString(),
                ["processors"] = Environment.ProcessorCount,
                ["torch_threads"] = torch.get_num_threads(),
                ["dotnet"] = RuntimeInformation.FrameworkDescription,
                ["machine_name"] = Environment.MachineName,
                ["load_average"] = ProcessMemory.LoadAverage(),
                ["time"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", Invariant),
            },
            ["summary"] = new JsonArray(summary.Strategies.Select((s, i) => (JsonNode)SummaryJson(s, summary, i)).ToArray()),
            ["rows"] = new JsonArray(rows.Select(r => (JsonNode)RowJson(r)).ToArray()),
        };
    }

    private static JsonObject SummaryJson(StrategySummary s, ComparisonSummary summary, int index)
    {
        var mean = new JsonObject();
        var std = new JsonObject();
        foreach (string name in ShownMetrics(s.Runs))
        {
            mean[name] = Number(s.Mean(name));
            std[name] = Number(s.Std(name));
        }
        return new JsonObject
        {
            ["strategy"] = s.Strategy,
            ["runs"] = s.Runs.Count,
            ["best"] = index == summary.BestIndex,
            ["winner"] = index == summary.WinnerIndex,
            ["tie"] = summary.IsTie && (index == summary.BestIndex || index == summary.RunnerUpIndex),
            ["recommended"] = summary.Recommendation?.Strategy == s.Strategy,
            ["lr"] = s.LearningRate,
            ["trainable_parameters"] = s.TrainableParameters,
            ["trainable_percent"] = Math.Round(s.TrainablePercent, 4),
            ["epochs_mean"] = Math.Round(s.EpochsTrained, 3),
            ["train_seconds_mean"] = Math.Round(s.TrainSeconds, 3),
            ["seconds_per_epoch_mean"] = Math.Round(s.SecondsPerEpoch, 4),
            ["samples_per_second_mean"] = Math.Round(s.SamplesPerSecond, 2),
            ["peak_rss_bytes_mean"] = s.PeakRssBytes,
            ["audits_passed"] = s.AuditsPassed,
            ["mean"] = mean,
            ["std"] = std,
        };
    }

    private static JsonNode? Number(double? value) => value is { } v && double.IsFinite(v) ? JsonValue.Create(v) : null;

    private static JsonObject RowJson(ComparisonRow row)
    {
        var metrics = new JsonObject();
        foreach (var (name, value) in row.Metrics) metrics[name] = double.IsFinite(value) ? value : null;
        return new JsonObject
        {
            ["strategy"] = row.Strategy,
            ["seed"] = row.Seed,
            ["lr"] = row.LearningRate,
            ["trainable_parameters"] = row.TrainableParameters,
            ["total_parameters"] = row.TotalParameters,
            ["trainable_percent"] = Math.Round(row.TrainablePercent, 4),
            ["train_seconds"] = Math.Round(row.TrainSeconds, 3),
            ["epochs"] = Math.Round(row.EpochsTrained, 3),
            ["steps"] = row.Steps,
            ["seconds_per_epoch"] = Math.Round(row.SecondsPerEpoch, 4),
            ["samples_per_second"] = Math.Round(row.SamplesPerSecond, 2),
            ["peak_rss_bytes"] = row.PeakRssBytes,
            ["peak_rss_scope"] = row.PeakRssPerRun ? "this run (VmHWM reset before loading the model)" : "process so far (VmHWM could not be reset)",
            ["rss_before_bytes"] = row.RssBeforeBytes,
            ["rss_after_bytes"] = row.RssAfterBytes,
            ["best_epoch"] = row.BestEpoch,
            ["metrics"] = metrics,
            ["audit_passed"] = row.AuditPassed,
            ["used_feature_cache"] = row.UsedFeatureCache,
            ["feature_source"] = row.FeatureSource,
            ["run_directory"] = row.RunDirectory,
        };
    }

    private string ToMarkdown(IReadOnlyList<ComparisonRow> rows, ComparisonSummary summary, string? stopped)
    {
        var md = new StringBuilder();
        md.AppendLine("# Strategy comparison").AppendLine();
        if (CommandLine is not null) md.AppendLine("```").AppendLine(CommandLine).AppendLine("```").AppendLine();
        var training = options.Training;
        string rates = options.LearningRate is { } lr ? lr.ToString("0.###e+0", Invariant) + " for every strategy" : "each strategy's default";
        md.AppendLine(Invariant, $"Model {options.ModelName}, task {options.Task.Name}, head {options.Head}, max length {options.MaxLength}, " +
            $"{options.BudgetText}, batch size {training.BatchSize}, seed(s) {string.Join(", ", options.SeedValues)}; learning rate: {rates}. " +
            $"Figures are mean ± standard deviation over the seeds; ★ marks a strategy that beats the runner-up by {summary.Metric} beyond the noise.").AppendLine();

        string[] shown = ShownMetrics(rows);
        md.AppendLine("| strategy | runs | lr | trainable | trainable % | epochs | train time (s) | time per epoch (s) | peak RSS (MiB) | " +
            string.Join(" | ", shown) + " | audit |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + string.Concat(shown.Select(_ => "---:|")) + "---|");
        for (int i = 0; i < summary.Strategies.Count; i++)
        {
            StrategySummary s = summary.Strategies[i];
            string name = i == summary.WinnerIndex ? $"**{s.Strategy}** ★"
                : summary.IsTie && (i == summary.BestIndex || i == summary.RunnerUpIndex) ? $"{s.Strategy} (tie)" : s.Strategy;
            if (summary.Recommendation?.Strategy == s.Strategy) name += " ← recommended";
            md.AppendLine(Invariant, $"| {name} | {s.Runs.Count} | {s.LearningRate:0.###e+0} | {s.TrainableParameters:N0} | {s.TrainablePercent:F2} | " +
                $"{s.EpochsTrained:0.##} | {s.TrainSeconds:F1}{(s.FeaturesFromDisk ? " (features from disk cache)" : "")} | {s.SecondsPerEpoch:0.###} | " +
                $"{Mib(s.PeakRssBytes)}{(s.PeakRssPerRun ? "" : " (so far)")} | {string.Join(" | ", shown.Select(m => s.Format(m)))} | " +
                $"{(s.AuditsPassed == s.Runs.Count ? "passed" : $"FAILED {s.Runs.Count - s.AuditsPassed}/{s.Runs.Count}")} |");
        }
        md.AppendLine();
        md.AppendLine(summary.Verdict).AppendLine();
        if (summary.Recommendation is { } recommendation) md.AppendLine("**" + recommendation.Text + "**").AppendLine();

        md.AppendLine("## Every run").AppendLine();
        md.AppendLine("| strategy | seed | epochs | steps | train time (s) | samples/s | peak RSS (MiB) | peak − RSS before (MiB) | " +
            string.Join(" | ", shown) + " | best epoch | audit |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|" + string.Concat(shown.Select(_ => "---:|")) + "---:|---|");
        foreach (ComparisonRow r in rows)
        {
            string values = string.Join(" | ", shown.Select(m => r.Metric(m) is { } v ? v.ToString("F4", Invariant) : "–"));
            md.AppendLine(Invariant, $"| {r.Strategy} | {r.Seed} | {r.EpochsTrained:0.##} | {r.Steps} | {r.TrainSeconds:F1}{(r.FeatureSource == "disk" ? " (features from disk cache)" : "")} | " +
                $"{r.SamplesPerSecond:F1} | {Mib(r.PeakRssBytes)}{(r.PeakRssPerRun ? "" : " (so far)")} | {Mib(r.PeakRssBytes - r.RssBeforeBytes)} | {values}" +
                $" | {r.BestEpoch} | {(r.AuditPassed ? "passed" : "FAILED")} |");
        }
        md.AppendLine();
        md.AppendLine("Train time excludes evaluation and includes computing a frozen backbone's features once; time per epoch is the train " +
            "time over the passes made through the training data, the cost the recommendation compares. Peak RSS is the " +
            "process's resident-memory high-water mark (VmHWM), reset before each run where the kernel allows it (else marked " +
            "\"so far\": the peak over the whole process up to that run). Memory a finished run freed is not always returned to " +
            "the system, so a later run starts from a higher RSS; \"peak − RSS before\" is what the run itself added.");
        if (stopped is not null) md.AppendLine().AppendLine(Invariant, $"**Stopped:** {stopped}; the runs above finished.");
        return md.ToString();
    }

    /// <summary>The <see cref="MetricNames.Headline"/> metrics every row has (accuracy or token accuracy, entity F1, macro-F1 … loss last).</summary>
    public static string[] ShownMetrics(IReadOnlyList<ComparisonRow> rows) =>
        MetricNames.Headline.Where(m => rows.Count > 0 && rows.All(r => r.Metrics.ContainsKey(m))).ToArray();

    /// <summary>Bytes as MiB with no decimals, "–" when unknown.</summary>
    public static string Mib(long? bytes) => bytes is { } b ? (b / (1024.0 * 1024.0)).ToString("F0", Invariant) : "–";

    private void WriteAtomically(string fileName, string content) => AtomicFile.WriteText(PathOf(fileName), content);

    /// <summary>Sends a run's training events to its recorder and, wrapped, to the comparison's listener.</summary>
    private sealed class Progress(Strategy strategy, RunRecorder recorder, IProgress<ComparisonEvent>? listener) : IProgress<TrainingEvent>
    {
        /// <summary>Where the frozen features of the training set came from, once reported.</summary>
        public string? FeatureSource { get; private set; }

        /// <summary>Optimizer steps taken so far.</summary>
        public int Steps { get; private set; }

        public void Report(TrainingEvent value)
        {
            if (value is FeaturesCachedEvent cached) FeatureSource ??= cached.Source;
            if (value is StepEvent step) Steps = step.Step;
            recorder.Report(value);
            listener?.Report(new StrategyTrainingEvent(strategy, value));
        }
    }
}

/// <summary>The process's memory figures from /proc/self (Linux); null elsewhere.</summary>
internal static class ProcessMemory
{
    /// <summary>A field of /proc/self/status in bytes (VmRSS: resident now, VmHWM: resident peak), or null.</summary>
    public static long? Read(string field)
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (!line.StartsWith(field + ":", StringComparison.Ordinal)) continue;
                string[] parts = line[(field.Length + 1)..].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[0], Invariant) * 1024; // the kernel reports kB
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>Resets VmHWM to the current VmRSS ("5" to /proc/self/clear_refs, Linux 4.0+); false when that is not possible.</summary>
    public static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>The 1-, 5- and 15-minute load averages from /proc/loadavg, or null.</summary>
    public static string? LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
}
