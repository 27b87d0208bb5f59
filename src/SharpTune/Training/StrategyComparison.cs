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

/// <summary>What a <see cref="StrategyComparison"/> runs: the same model, head, data budget and seed under each strategy.</summary>
public sealed record ComparisonOptions
{
    /// <summary>The strategies, run one after another in this order. Their names must differ.</summary>
    public IReadOnlyList<Strategy> Strategies { get; init; } = [];
    /// <summary>Pretrained Hugging Face model directory; null: the packaged all-MiniLM-L6-v2.</summary>
    public string? ModelDirectory { get; init; }
    /// <summary>Head name (mean, cls, pooled or a registered type).</summary>
    public string Head { get; init; } = "mean";
    /// <summary>The task.</summary>
    public TaskType Task { get; init; } = TaskType.SingleLabel;
    /// <summary>Texts are truncated to this many tokens.</summary>
    public int MaxLength { get; init; } = 128;
    /// <summary>
    /// Training options shared by every run. Their base learning rate is replaced per run: by
    /// <see cref="LearningRate"/> when set, else by the strategy's <see cref="Strategy.DefaultLearningRate"/>.
    /// <see cref="TrainingOptions.MetricForBest"/> is replaced by <see cref="Metric"/>.
    /// </summary>
    public TrainingOptions Training { get; init; } = new();
    /// <summary>One learning rate for every strategy; null: each strategy's default (a frozen backbone's head needs a far larger one than full fine-tuning).</summary>
    public double? LearningRate { get; init; }
    /// <summary>The metric that picks each run's best epoch and the best row. Null: the task's <see cref="TaskType.DefaultMetric"/>.</summary>
    public string? Metric { get; init; }

    /// <summary>The metric in use: <see cref="Metric"/> or the task's default.</summary>
    public string MetricOrDefault => Metric ?? Task.DefaultMetric;

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
        Training.Validate();
        return this;
    }
}

/// <summary>One strategy's outcome in a comparison.</summary>
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
public sealed record ComparisonRow(string Strategy, double LearningRate, long TrainableParameters, long TotalParameters, double TrainablePercent,
    double TrainSeconds, double SamplesPerSecond, long? PeakRssBytes, bool PeakRssPerRun, long? RssBeforeBytes, long? RssAfterBytes,
    IReadOnlyDictionary<string, double> Metrics, int BestEpoch, bool AuditPassed, bool UsedFeatureCache, string RunDirectory,
    string? FeatureSource = null)
{
    /// <summary>The value of a metric of the best evaluation, or null when not computed.</summary>
    public double? Metric(string name) => Metrics.TryGetValue(name, out double value) ? value : null;
}

/// <summary>The rows of a comparison, the best one and where the results were written.</summary>
/// <param name="Rows">Finished strategies, in the order run.</param>
/// <param name="Metric">The metric that picked the best row.</param>
/// <param name="BestIndex">Index of the best row in <paramref name="Rows"/>, or null when there are none.</param>
/// <param name="Stopped">Why the comparison ended before the last strategy (e.g. "cancelled during top:2"), or null.</param>
/// <param name="JsonPath">compare.json.</param>
/// <param name="MarkdownPath">compare.md.</param>
/// <param name="ChartPath">compare.png (null when there were no rows to draw).</param>
public sealed record ComparisonResult(IReadOnlyList<ComparisonRow> Rows, string Metric, int? BestIndex, string? Stopped,
    string JsonPath, string MarkdownPath, string? ChartPath)
{
    /// <summary>The best row, or null.</summary>
    public ComparisonRow? Best => BestIndex is { } i ? Rows[i] : null;
}

/// <summary>What a comparison reports while it runs.</summary>
public abstract record ComparisonEvent;

/// <summary>A strategy's run starts.</summary>
/// <param name="Index">0-based position of the strategy.</param>
/// <param name="Count">Number of strategies.</param>
/// <param name="Strategy">The strategy.</param>
/// <param name="LearningRate">Its base learning rate.</param>
/// <param name="RunDirectory">Where its run is saved.</param>
public sealed record StrategyStartedEvent(int Index, int Count, Strategy Strategy, double LearningRate, string RunDirectory) : ComparisonEvent;

/// <summary>A training event of the current strategy's run.</summary>
public sealed record StrategyTrainingEvent(Strategy Strategy, TrainingEvent Event) : ComparisonEvent;

/// <summary>A strategy finished: its row has been written to compare.json and compare.md.</summary>
public sealed record StrategyFinishedEvent(int Index, ComparisonRow Row) : ComparisonEvent;

/// <summary>
/// Trains the same pretrained model on the same data with the same budget and seed under several strategies,
/// one after another (a fresh <see cref="TextClassifier"/> per strategy, released afterwards), and writes:
/// <list type="bullet">
/// <item><c>&lt;out&gt;/&lt;strategy&gt;/</c>: each run, saved as <c>sharptune train</c> saves it (model + <see cref="RunRecorder"/> files).</item>
/// <item><c>compare.json</c>: every row, the options and the machine; <c>compare.md</c>: the table and the command line;
/// <c>compare.png</c>: the metric against train time, one labelled point per strategy.</item>
/// </list>
/// The three files are rewritten after each strategy, so a crash or Ctrl+C keeps every finished row.
/// Cancellation stops the current run (its row is not added) and writes the finished rows.
/// </summary>
public sealed class StrategyComparison(string directory, ComparisonOptions options)
{
    /// <summary>File names of the comparison, in its directory.</summary>
    public const string JsonFile = "compare.json", MarkdownFile = "compare.md", ChartFile = "compare.png";

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
    private readonly ComparisonOptions options = options.Validate();

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

    /// <summary>Runs every strategy on <paramref name="train"/>, evaluating on <paramref name="eval"/>, labels <paramref name="labels"/>.</summary>
    public ComparisonResult Run(IReadOnlyList<TextExample> train, IReadOnlyList<TextExample> eval, LabelSet labels,
        IProgress<ComparisonEvent>? progress = null, CancellationToken cancellation = default)
    {
        if (eval.Count == 0) throw new SharpTuneException("A comparison needs evaluation data: the eval set is empty.");
        System.IO.Directory.CreateDirectory(Directory);
        string metric = options.MetricOrDefault;
        var rows = new List<ComparisonRow>();
        string? stopped = null;
        string? chart = null;
        for (int i = 0; i < options.Strategies.Count; i++)
        {
            Strategy strategy = options.Strategies[i];
            if (cancellation.IsCancellationRequested) { stopped = $"cancelled before {strategy.Name}"; break; }
            ComparisonRow? row = RunOne(i, strategy, train, eval, labels, progress, cancellation);
            if (row is null) { stopped = $"cancelled during {strategy.Name}"; break; }
            rows.Add(row);
            chart = Write(rows, metric, null);
            progress?.Report(new StrategyFinishedEvent(i, row));
        }
        chart = Write(rows, metric, stopped) ?? chart;
        return new ComparisonResult(rows, metric, BestIndex(rows, metric), stopped, PathOf(JsonFile), PathOf(MarkdownFile), chart);
    }

    /// <summary>One strategy: fresh classifier → train → save like <c>train</c> → row. Null when cancelled.</summary>
    private ComparisonRow? RunOne(int index, Strategy strategy, IReadOnlyList<TextExample> train, IReadOnlyList<TextExample> eval, LabelSet labels,
        IProgress<ComparisonEvent>? progress, CancellationToken cancellation)
    {
        double rate = options.LearningRate ?? strategy.DefaultLearningRate;
        TrainingOptions training = options.Training with
        {
            LearningRates = options.Training.LearningRates with { BaseRate = rate },
            MetricForBest = options.MetricOrDefault,
        };
        string runDirectory = Path.Combine(Directory, DirectoryName(strategy));
        progress?.Report(new StrategyStartedEvent(index, options.Strategies.Count, strategy, rate, runDirectory));

        // Release the previous run's tensors before measuring this one.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        bool perRun = ProcessMemory.ResetPeak();
        long? before = ProcessMemory.Read("VmRSS");

        using var run = Checkpoints.StagedDirectory.Begin(runDirectory); // the run directory appears whole, or not at all
        var recorder = new RunRecorder(run.Path);
        var forward = new Progress(strategy, recorder, progress);
        using var classifier = TextClassifier.Create(options.ModelDirectory, options.Head, labels, options.Task, options.MaxLength, training.Seed);
        TrainingResult result = classifier.Train(train, eval, strategy, training, forward, cancellation);
        long? after = ProcessMemory.Read("VmRSS");
        long? peak = ProcessMemory.Read("VmHWM");
        if (result.Stopped == "cancelled") return null;

        classifier.WriteFiles(run.Path);
        recorder.WriteCharts();
        recorder.WriteSummary(result, new JsonObject
        {
            ["model"] = options.ModelDirectory ?? "packaged:all-MiniLM-L6-v2",
            ["head"] = options.Head,
            ["max_length"] = options.MaxLength,
            ["lr"] = rate,
            ["comparison"] = Path.GetFullPath(PathOf(JsonFile)),
        });
        run.Commit();
        EvaluationEvent best = result.BestEvaluation ?? throw new SharpTuneException($"strategy {strategy.Name}: training produced no evaluation.");
        return new ComparisonRow(strategy.Name, rate, result.Plan.TrainableParameters, result.Plan.TotalParameters, result.Plan.TrainablePercent,
            result.TrainSeconds, result.SamplesPerSecond, peak, perRun, before, after,
            best.Metrics.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal)).ToDictionary(),
            best.Epoch + 1, result.Audit.Passed, result.UsedFeatureCache, runDirectory, forward.FeatureSource);
    }

    /// <summary>The index of the best row by <paramref name="metric"/> (lower is better for loss and mse), or null.</summary>
    public static int? BestIndex(IReadOnlyList<ComparisonRow> rows, string metric)
    {
        int? best = null;
        for (int i = 0; i < rows.Count; i++)
            if (rows[i].Metric(metric) is { } value && (best is null || MetricNames.IsBetter(metric, value, rows[best.Value].Metric(metric)!.Value)))
                best = i;
        return best;
    }

    private string PathOf(string fileName) => Path.Combine(Directory, fileName);

    /// <summary>Rewrites compare.json, compare.md and (with rows) compare.png; returns the chart's path or null.</summary>
    private string? Write(IReadOnlyList<ComparisonRow> rows, string metric, string? stopped)
    {
        int? best = BestIndex(rows, metric);
        WriteAtomically(JsonFile, ToJson(rows, metric, best, stopped).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        WriteAtomically(MarkdownFile, ToMarkdown(rows, metric, best, stopped));
        if (rows.Count == 0) return null;
        string chart = PathOf(ChartFile);
        ComparisonChart.Write(chart + ".tmp.png", rows, metric, best);
        File.Move(chart + ".tmp.png", chart, overwrite: true);
        return chart;
    }

    private JsonObject ToJson(IReadOnlyList<ComparisonRow> rows, string metric, int? best, string? stopped)
    {
        var training = options.Training;
        return new JsonObject
        {
            ["command_line"] = CommandLine,
            ["metric"] = metric,
            ["best"] = best is { } b ? rows[b].Strategy : null,
            ["stopped"] = stopped,
            ["finished"] = rows.Count,
            ["strategies"] = new JsonArray(options.Strategies.Select(s => (JsonNode)JsonValue.Create(s.Name)).ToArray()),
            ["options"] = new JsonObject
            {
                ["model"] = options.ModelDirectory ?? "packaged:all-MiniLM-L6-v2",
                ["head"] = options.Head,
                ["task"] = options.Task.Name,
                ["max_length"] = options.MaxLength,
                ["lr"] = options.LearningRate is { } lr ? lr : "strategy default",
                ["epochs"] = training.Epochs,
                ["batch_size"] = training.BatchSize,
                ["grad_accum"] = training.GradientAccumulationSteps,
                ["weight_decay"] = training.WeightDecay,
                ["warmup_ratio"] = training.WarmupRatio,
                ["schedule"] = training.Schedule.ToString(),
                ["seed"] = training.Seed,
                ["cache_frozen_features"] = training.CacheFrozenFeatures,
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
            ["rows"] = new JsonArray(rows.Select((r, i) => (JsonNode)RowJson(r, i == best)).ToArray()),
        };
    }

    private static JsonObject RowJson(ComparisonRow row, bool isBest)
    {
        var metrics = new JsonObject();
        foreach (var (name, value) in row.Metrics) metrics[name] = double.IsFinite(value) ? value : null;
        return new JsonObject
        {
            ["strategy"] = row.Strategy,
            ["best"] = isBest,
            ["lr"] = row.LearningRate,
            ["trainable_parameters"] = row.TrainableParameters,
            ["total_parameters"] = row.TotalParameters,
            ["trainable_percent"] = Math.Round(row.TrainablePercent, 4),
            ["train_seconds"] = Math.Round(row.TrainSeconds, 3),
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

    private string ToMarkdown(IReadOnlyList<ComparisonRow> rows, string metric, int? best, string? stopped)
    {
        var md = new StringBuilder();
        md.AppendLine("# Strategy comparison").AppendLine();
        if (CommandLine is not null) md.AppendLine("```").AppendLine(CommandLine).AppendLine("```").AppendLine();
        var training = options.Training;
        string rates = options.LearningRate is { } lr ? lr.ToString("0.###e+0", Invariant) + " for every strategy" : "each strategy's default";
        md.AppendLine(Invariant, $"Model {options.ModelDirectory ?? "packaged all-MiniLM-L6-v2"}, head {options.Head}, max length {options.MaxLength}, " +
            $"{training.Epochs} epoch(s), batch size {training.BatchSize}, seed {training.Seed}; learning rate: {rates}" +
            $". Each run keeps its best epoch by {metric}; ★ marks the best row by {metric}.").AppendLine();
        string[] shown = ShownMetrics(rows);
        md.AppendLine("| strategy | lr | trainable | trainable % | train time (s) | samples/s | peak RSS (MiB) | peak − RSS before (MiB) | " +
            string.Join(" | ", shown) + " | best epoch | audit |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|" + string.Concat(shown.Select(_ => "---:|")) + "---:|---|");
        for (int i = 0; i < rows.Count; i++)
        {
            ComparisonRow r = rows[i];
            string name = i == best ? $"**{r.Strategy}** ★" : r.Strategy;
            string values = string.Join(" | ", shown.Select(m => r.Metric(m) is { } v ? v.ToString("F4", Invariant) : "–"));
            md.AppendLine(Invariant, $"| {name} | {r.LearningRate:0.###e+0} | {r.TrainableParameters:N0} | {r.TrainablePercent:F2} | {r.TrainSeconds:F1}{(r.FeatureSource == "disk" ? " (features from disk cache)" : "")} | " +
                $"{r.SamplesPerSecond:F1} | {Mib(r.PeakRssBytes)}{(r.PeakRssPerRun ? "" : " (so far)")} | {Mib(r.PeakRssBytes - r.RssBeforeBytes)} | {values}" +
                $" | {r.BestEpoch} | {(r.AuditPassed ? "passed" : "FAILED")} |");
        }
        md.AppendLine();
        md.AppendLine("Train time excludes evaluation and includes computing a frozen backbone's features once. Peak RSS is the " +
            "process's resident-memory high-water mark (VmHWM), reset before each run where the kernel allows it (else marked " +
            "\"so far\": the peak over the whole process up to that run). Memory a finished run freed is not always returned to " +
            "the system, so a later run starts from a higher RSS; \"peak − RSS before\" is what the run itself added.");
        if (stopped is not null) md.AppendLine().AppendLine(Invariant, $"**Stopped:** {stopped}; the rows above finished.");
        return md.ToString();
    }

    /// <summary>The headline metrics present in the rows: accuracy, macro-F1 … and loss last.</summary>
    public static string[] ShownMetrics(IReadOnlyList<ComparisonRow> rows)
    {
        string[] order = [MetricNames.Accuracy, MetricNames.MacroF1, MetricNames.MicroF1, MetricNames.Pearson, MetricNames.Spearman, MetricNames.Mse, MetricNames.Loss];
        return order.Where(m => rows.Count > 0 && rows.All(r => r.Metrics.ContainsKey(m))).ToArray();
    }

    /// <summary>Bytes as MiB with no decimals, "–" when unknown.</summary>
    public static string Mib(long? bytes) => bytes is { } b ? (b / (1024.0 * 1024.0)).ToString("F0", Invariant) : "–";

    private void WriteAtomically(string fileName, string content)
    {
        string path = PathOf(fileName);
        File.WriteAllText(path + ".tmp", content);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Sends a run's training events to its recorder and, wrapped, to the comparison's listener.</summary>
    private sealed class Progress(Strategy strategy, RunRecorder recorder, IProgress<ComparisonEvent>? listener) : IProgress<TrainingEvent>
    {
        /// <summary>Where the frozen features of the training set came from, once reported.</summary>
        public string? FeatureSource { get; private set; }

        public void Report(TrainingEvent value)
        {
            if (value is FeaturesCachedEvent cached) FeatureSource ??= cached.Source;
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
