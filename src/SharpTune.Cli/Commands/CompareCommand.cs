using System.ComponentModel;
using System.Globalization;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

internal sealed class CompareSettings : FineTuneSettings
{
    /// <summary>The strategies of sharptune compare and demo when none are given.</summary>
    public const string DefaultStrategies = "frozen,top:2,bitfit,lora,full";

    [CommandOption("--eval <FILE>", true)]
    [Description("Evaluation data, evaluated after every epoch; each run keeps its best epoch by --metric.")]
    public string Eval { get; set; } = "";

    [CommandOption("--out <DIR>", true)]
    [Description("Comparison directory: compare.json, compare.md, compare.png and one run directory per strategy.")]
    public string Out { get; set; } = "";

    [CommandOption("--force")]
    [Description("Write into a non-empty --out that holds no previous comparison.")]
    public bool Force { get; set; }

    [CommandOption("--strategies <LIST>")]
    [Description("Comma-separated strategies, run in this order; LoRA options continue the lora entry (lora:r=4,alpha=8,full).")]
    [DefaultValue(DefaultStrategies)]
    public string Strategies { get; set; } = DefaultStrategies;

    [CommandOption("--lr <RATE>")]
    [Description("One learning rate for every strategy. Default: each strategy's own (full 1e-4, top:K 1e-4, gradual 1e-4, lora 5e-4, bitfit 1e-3, frozen 1e-2).")]
    public double? LearningRate { get; set; }

    [CommandOption("--metric <NAME>")]
    [Description("Picks each run's best epoch and the best row: accuracy, macro_f1, mcc or loss (regression: pearson, spearman, mse, loss; " +
        "token task: token_accuracy, macro_f1, entity_f1, entity_precision, entity_recall — entity scores need B-/I- tags — or loss). " +
        "Default: macro_f1 (pearson for regression, token_accuracy for tagging); unlike accuracy it is not fooled by always answering the majority class.")]
    public string? Metric { get; set; }

    [CommandOption("--train-limit <N>")]
    [Description("Use only the first N training examples (token task: sentences).")]
    public int? TrainLimit { get; set; }

    [CommandOption("--eval-limit <N>")]
    [Description("Use only the first N evaluation examples (token task: sentences).")]
    public int? EvalLimit { get; set; }

    [CommandOption("--budget <KIND>")]
    [Description("epochs: every strategy trains --epochs (or its own, --strategy-epochs) and keeps its best epoch; " +
        "time: every run trains --seconds of wall-clock time (frozen spends it on many cheap epochs), learning rate constant after warm-up; " +
        "steps: every run takes --steps optimizer steps. Time and steps runs are evaluated once, at their end.")]
    [DefaultValue("epochs")]
    public string Budget { get; set; } = "epochs";

    [CommandOption("--seconds <S>")]
    [Description("With --budget time: the training time of each run (feature caching included, evaluation excluded).")]
    public double? Seconds { get; set; }

    [CommandOption("--steps <N>")]
    [Description("With --budget steps: the optimizer steps of each run.")]
    public int? Steps { get; set; }

    [CommandOption("--strategy-epochs <LIST>")]
    [Description("With --budget epochs: epochs per strategy, e.g. frozen=30,full=3 (a strategy's name or its kind before ':'); the others get --epochs.")]
    public string? StrategyEpochs { get; set; }

    [CommandOption("--seeds <N>")]
    [Description("Runs per strategy, seeded --seed, --seed+1 …; the table shows mean ± standard deviation, and ★ marks the best only " +
        "when a paired bootstrap over the eval examples (token task: sentences; seeds resampled too) finds it better than the runner-up (p < 0.05); otherwise it says tie.")]
    [DefaultValue(1)]
    public int Seeds { get; set; } = 1;

    [CommandOption("--tolerance <X>")]
    [Description("The recommendation is the cheapest strategy (time per epoch) within this much of the best mean. " +
        "Default: the best's standard deviation over its seeds (one seed: its standard error over the eval examples).")]
    public double? Tolerance { get; set; }

    [CommandOption("--format <FORMAT>")]
    [Description("table | json (compare.json's object on standard output; progress goes to standard error).")]
    [DefaultValue("table")]
    public string Format { get; set; } = "table";

}

/// <summary>sharptune compare: the same data, model, budget and seed under several strategies, side by side.</summary>
internal sealed class CompareCommand(IAnsiConsole console) : Command<CompareSettings>
{
    public override int Execute(CommandContext context, CompareSettings settings, CancellationToken cancellationToken) =>
        Run(console, settings, "sharptune " + string.Join(' ', context.Arguments.Select(Quote)), cancellationToken).Exit;

    /// <summary>Runs a comparison and prints its table; the exit code is 2 when a finished run failed its freeze audit.</summary>
    public static (int Exit, ComparisonResult Result) Run(IAnsiConsole console, CompareSettings settings, string commandLine, CancellationToken cancellationToken)
    {
        // Everything that can be checked without reading data or weights is checked first.
        bool json = CommandSupport.IsJson(settings.Format);
        IReadOnlyList<Strategy> strategies = ParseStrategies(settings.Strategies);
        BudgetKind budget = ParseBudget(settings.Budget);
        IReadOnlyDictionary<string, int> strategyEpochs = ParseStrategyEpochs(settings.StrategyEpochs);
        TaskType? task = CommandSupport.ParseTask(settings.Task);
        if (settings.TrainLimit is <= 0) throw new SharpTuneException($"--train-limit must be positive, got {settings.TrainLimit}.");
        if (settings.EvalLimit is <= 0) throw new SharpTuneException($"--eval-limit must be positive, got {settings.EvalLimit}.");
        if (settings.Model is not null) CommandSupport.RequireDirectory(settings.Model, "--model");
        CommandSupport.RequireFile(settings.Train, "--train");
        CommandSupport.RequireFile(settings.Eval, "--eval");
        if (string.IsNullOrWhiteSpace(settings.Out)) throw new SharpTuneException("--out must name the comparison directory.");
        // One process at a time writes a comparison directory, as train does a run directory (the same lock: a train into
        // it is kept out too): a second one fails here, at once. The lock goes when this process ends, however it ends.
        using var outLock = Checkpoints.DirectoryLock.Acquire(settings.Out, "--out");
        CheckDirectory(settings.Out, settings.Force);
        var training = new TrainingOptions
        {
            Epochs = settings.Epochs, BatchSize = settings.BatchSize, Seed = settings.Seed, Device = settings.Device,
            Precision = Models.Precisions.Parse(settings.Precision),
        }.Validate();
        var options = new ComparisonOptions
        {
            Strategies = strategies, ModelDirectory = settings.Model, Training = training,
            LearningRate = settings.LearningRate, Metric = settings.Metric, Budget = budget, StrategyEpochs = strategyEpochs,
            Seconds = settings.Seconds, Steps = settings.Steps, Seeds = settings.Seeds, Tolerance = settings.Tolerance,
        };
        // With --format json the standard output is the JSON alone: everything else goes to standard error.
        IAnsiConsole log = json ? CliApp.ConsoleFor(Console.Error, Console.IsErrorRedirected) : console;

        var (data, inputs) = CommandSupport.IsTokenTask(task, settings.Train) ? LoadTagged(settings, log) : LoadTexts(settings, task, log);
        int maxLength = settings.MaxLength ?? (settings.Model is null ? 128
            : Math.Min(128, Architectures.LoadConfig(Path.Combine(settings.Model, "config.json")).MaxInputLength));

        options = (options with { Task = data.Task, Head = settings.Head ?? data.DefaultHead, MaxLength = maxLength }).Validate();
        data.CheckMetric(options.MetricOrDefault);
        inputs["task"] = data.Task.Name;
        inputs["labels"] = new JsonArray(data.Labels.Names.Select(n => (JsonNode)JsonValue.Create(n)).ToArray());
        var comparison = new StrategyComparison(settings.Out, options) { CommandLine = commandLine, Inputs = inputs };
        log.WriteLine($"Comparing {strategies.Count} strategies × {settings.Seeds} seed(s) on {data.TrainCount} training and {data.EvalCount} eval {data.Unit} " +
            $"({settings.Model ?? "packaged all-MiniLM-L6-v2"}, task {data.Task.Name}, head {options.Head}, max length {maxLength}, {options.BudgetText}, " +
            $"batch size {settings.BatchSize}, seed(s) {string.Join(", ", options.SeedValues)}, best by {options.MetricOrDefault}).");

        // The first Ctrl+C stops the current run; finished rows are kept. A second one ends the process.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (stop.IsCancellationRequested) return;
            e.Cancel = true;
            stop.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        ComparisonResult result;
        try
        {
            result = comparison.Run(data, new CompareProgress(log, budget), stop.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }

        if (result.Stopped is not null) log.MarkupLineInterpolated($"[yellow]Stopped ({result.Stopped}); the finished rows are kept.[/]");
        if (json) CommandSupport.WriteJson(console, JsonNode.Parse(File.ReadAllText(result.JsonPath))!);
        else
        {
            // A terminal narrower than the whole table gets it in two halves (cost, then quality) rather than wrapped cells.
            if (console.Profile.Width >= WideTable) console.Write(Table(result));
            else
            {
                console.Write(Table(result, quality: false));
                console.Write(Table(result, cost: false));
            }
            console.WriteLine(result.Summary.Verdict);
            if (result.Summary.Recommendation is { } recommendation) console.MarkupLine("[bold]" + Markup.Escape(recommendation.Text) + "[/]");
            string chart = result.ChartPath is null ? "" : ", " + Path.GetFileName(result.ChartPath);
            console.WriteLine($"Written: {Path.GetFullPath(result.JsonPath)}, {Path.GetFileName(result.MarkdownPath)}{chart}; one run directory per run. " +
                $"A page to look at: sharptune report {settings.Out}");
        }
        return (result.Rows.All(r => r.AuditPassed) ? 0 : 2, result);
    }

    /// <summary>Texts with labels (--train-limit/--eval-limit applied) and what compare.json says about them.</summary>
    private static (TaskData Data, JsonObject Inputs) LoadTexts(CompareSettings settings, TaskType? task, IAnsiConsole log)
    {
        var (train, eval, labels) = CommandSupport.LoadLabelledFiles(settings.Train, settings.Eval, settings, task, log);
        var trainExamples = train.Examples.Take(settings.TrainLimit ?? int.MaxValue).ToList();
        var evalExamples = eval!.Examples.Take(settings.EvalLimit ?? int.MaxValue).ToList();
        var inputs = new JsonObject
        {
            ["train_file"] = settings.Train, ["train_examples"] = trainExamples.Count,
            ["eval_file"] = settings.Eval, ["eval_examples"] = evalExamples.Count,
        };
        return (new TextTaskData(trainExamples, evalExamples, labels, train.Task, settings.Train, settings.Eval), inputs);
    }

    /// <summary>Tagged sentences (--train-limit/--eval-limit count sentences) and what compare.json says about them.</summary>
    private static (TaskData Data, JsonObject Inputs) LoadTagged(CompareSettings settings, IAnsiConsole log)
    {
        var (train, eval, tags) = CommandSupport.LoadTaggedFiles(settings.Train, settings.Eval, settings, log);
        var trainSentences = train.Sentences.Take(settings.TrainLimit ?? int.MaxValue).ToList();
        var evalSentences = eval!.Sentences.Take(settings.EvalLimit ?? int.MaxValue).ToList();
        var inputs = new JsonObject
        {
            ["train_file"] = settings.Train, ["train_examples"] = trainSentences.Count, ["train_words"] = trainSentences.Sum(s => s.Tokens.Count),
            ["eval_file"] = settings.Eval, ["eval_examples"] = evalSentences.Count, ["eval_words"] = evalSentences.Sum(s => s.Tokens.Count),
            ["unit"] = "sentences", ["tag_column"] = settings.TagColumn, ["stride"] = settings.Stride,
        };
        return (new TokenTaskData(trainSentences, evalSentences, tags, settings.Stride, settings.Train, settings.Eval), inputs);
    }

    /// <summary>Parses --budget: epochs, time or steps.</summary>
    public static BudgetKind ParseBudget(string text) => text.ToLowerInvariant() switch
    {
        "epochs" => BudgetKind.Epochs,
        "time" => BudgetKind.Time,
        "steps" => BudgetKind.Steps,
        _ => throw new SharpTuneException($"--budget must be epochs, time or steps, got '{text}'."),
    };

    /// <summary>Parses --strategy-epochs: NAME=EPOCHS pairs separated by commas (frozen=30,full=3); the last '=' splits a pair.</summary>
    public static IReadOnlyDictionary<string, int> ParseStrategyEpochs(string? list)
    {
        var epochs = new Dictionary<string, int>(StringComparer.Ordinal);
        if (list is null) return epochs;
        foreach (string part in list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int split = part.LastIndexOf('=');
            if (split <= 0 || !int.TryParse(part[(split + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
                throw new SharpTuneException($"--strategy-epochs: '{part}' is not NAME=EPOCHS (e.g. frozen=30,full=3).");
            string name = part[..split].Trim();
            if (!epochs.TryAdd(name, value)) throw new SharpTuneException($"--strategy-epochs: '{name}' is given twice.");
        }
        if (epochs.Count == 0) throw new SharpTuneException("--strategy-epochs: give NAME=EPOCHS pairs, e.g. frozen=30,full=3.");
        return epochs;
    }

    /// <summary>
    /// Splits a comma-separated list of strategies. A part with '=' but no ':' continues the LoRA entry before it,
    /// so "lora:r=4,alpha=8,full" is two strategies.
    /// </summary>
    public static IReadOnlyList<Strategy> ParseStrategies(string list)
    {
        var specs = new List<string>();
        foreach (string part in list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (part.Contains('=') && !part.Contains(':') && specs.Count > 0 && specs[^1].StartsWith("lora", StringComparison.OrdinalIgnoreCase))
                specs[^1] += "," + part;
            else
                specs.Add(part);
        }
        if (specs.Count == 0) throw new SharpTuneException("--strategies: give at least one strategy, e.g. " + CompareSettings.DefaultStrategies + ".");
        return specs.Select(Strategy.Parse).ToList();
    }

    /// <summary>Console columns the whole table needs; narrower consoles get it in two halves.</summary>
    public const int WideTable = 150;

    /// <summary>
    /// The comparison table: one row per strategy (figures are means over its seeds, metrics mean ± standard
    /// deviation); ★ marks a strategy that beats the runner-up beyond the noise, "=" the two best when it does not
    /// (a tie). <paramref name="cost"/> columns (trainable, epochs, time, time per epoch, peak RSS; the whole table also
    /// the learning rate) and/or <paramref name="quality"/> columns (metrics, audit). Cells are compact (3.55M, 1e-4,
    /// 0.912) and never wrap; compare.md and compare.json hold the exact figures, the line below the table the recommendation.
    /// </summary>
    public static Table Table(ComparisonResult result, bool cost = true, bool quality = true)
    {
        var invariant = CultureInfo.InvariantCulture;
        ComparisonSummary summary = result.Summary;
        string[] metrics = quality ? StrategyComparison.ShownMetrics(result.Rows) : [];
        int seeds = summary.Strategies.Count == 0 ? 0 : summary.Strategies.Max(s => s.Runs.Count);
        string part = cost && quality ? "" : cost ? " (cost)" : " (quality)";
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"Strategies compared{part}{(seeds > 1 ? $", mean of {seeds} seeds" : "")}; ★ best beyond the noise by {Markup.Escape(result.Metric)}, = tie")
            .AddColumn(new TableColumn("strategy").NoWrap());
        if (cost && quality) table.AddColumn(new TableColumn("lr").RightAligned().NoWrap());
        if (cost)
            table.AddColumn(new TableColumn("trainable").RightAligned().NoWrap()).AddColumn(new TableColumn("epochs").RightAligned().NoWrap())
                .AddColumn(new TableColumn("time").RightAligned().NoWrap()).AddColumn(new TableColumn("s/epoch").RightAligned().NoWrap())
                .AddColumn(new TableColumn("peak RSS").RightAligned().NoWrap());
        foreach (string metric in metrics) table.AddColumn(new TableColumn(metric).RightAligned().NoWrap());
        if (quality) table.AddColumn(new TableColumn("audit").NoWrap());
        for (int i = 0; i < summary.Strategies.Count; i++)
        {
            StrategySummary s = summary.Strategies[i];
            bool winner = i == summary.WinnerIndex;
            bool tie = summary.IsTie && (i == summary.BestIndex || i == summary.RunnerUpIndex);
            string Cell(string text) => winner ? $"[bold]{Markup.Escape(text)}[/]" : Markup.Escape(text);
            var cells = new List<string> { Cell((winner ? "★ " : tie ? "= " : "  ") + s.Strategy) };
            if (cost && quality) cells.Add(Cell(s.LearningRate.ToString("0.###e+0", invariant)));
            if (cost)
                cells.AddRange([
                    Cell(Short(s.TrainableParameters) + " " + s.TrainablePercent.ToString(s.TrainablePercent >= 1 ? "F1" : "F2", invariant) + "%"),
                    Cell(s.EpochsTrained.ToString(s.EpochsTrained >= 100 ? "F0" : "0.##", invariant)),
                    Cell(string.Create(invariant, $"{s.TrainSeconds:F1} s")),
                    Cell(s.SecondsPerEpoch.ToString(s.SecondsPerEpoch >= 10 ? "F1" : "G3", invariant)),
                    Cell(StrategyComparison.Mib(s.PeakRssBytes) + " MiB" + (s.PeakRssPerRun ? "" : " so far")),
                ]);
            cells.AddRange(metrics.Select(m => Cell(s.Format(m, "F3"))));
            if (quality) cells.Add(s.AuditsPassed == s.Runs.Count ? "[green]passed[/]" : $"[red]FAILED {s.Runs.Count - s.AuditsPassed}/{s.Runs.Count}[/]");
            table.AddRow(cells.ToArray());
        }
        return table;
    }

    /// <summary>A parameter count in at most five characters: 770, 26.5k, 3.55M.</summary>
    private static string Short(long count) => count switch
    {
        < 10_000 => count.ToString(CultureInfo.InvariantCulture),
        < 1_000_000 => (count / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "k",
        < 10_000_000 => (count / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M",
        _ => (count / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + "M",
    };

    /// <summary>An empty or missing directory, or a previous comparison (replaced), is fine; anything else needs --force.</summary>
    private static void CheckDirectory(string directory, bool force)
    {
        if (File.Exists(directory)) throw new SharpTuneException($"{directory}: --out is a file; give a directory.");
        if (!Directory.Exists(directory) || !Directory.EnumerateFileSystemEntries(directory).Any()) return;
        if (File.Exists(Path.Combine(directory, StrategyComparison.JsonFile)) || force) return;
        throw new SharpTuneException($"{directory}: --out is not empty and holds no previous comparison ({StrategyComparison.JsonFile}); " +
            "choose another directory or pass --force.");
    }

    private static string Quote(string argument) =>
        argument.Length > 0 && argument.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=,+".Contains(c)) ? argument : "'" + argument.Replace("'", "'\\''") + "'";

    /// <summary>
    /// Compact progress: a header per run, one line per epoch (under a time or step budget, where a frozen run may
    /// make thousands of epochs, at most one every <see cref="BudgetLineSeconds"/> seconds), evaluations, the audit verdict.
    /// </summary>
    private sealed class CompareProgress(IAnsiConsole console, BudgetKind budget) : IProgress<ComparisonEvent>
    {
        private const double BudgetLineSeconds = 10;
        private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
        private TrainingStartedEvent? started;
        private double lastLine;

        public void Report(ComparisonEvent value)
        {
            switch (value)
            {
                case StrategyStartedEvent start:
                    lastLine = double.NegativeInfinity;
                    console.MarkupLine(string.Create(Invariant,
                        $"[bold][[{start.Index + 1}/{start.Count}]] {Markup.Escape(start.Strategy.Name)}[/] (seed {start.Seed}, lr {start.LearningRate:0.###e+0}) → {Markup.Escape(start.RunDirectory)}"));
                    break;
                case StrategyTrainingEvent { Event: var e }:
                    OnTraining(e);
                    break;
                case StrategyFinishedEvent finished:
                    ComparisonRow row = finished.Row;
                    console.MarkupLine(string.Create(Invariant,
                        $"  done: {row.TrainSeconds:F1} s, {row.EpochsTrained:0.##} epoch(s) in {row.Steps} steps, {row.SamplesPerSecond:F1} samples/s, kept epoch {row.BestEpoch}"));
                    break;
            }
        }

        private void OnTraining(TrainingEvent value)
        {
            switch (value)
            {
                case PlanEvent plan:
                    console.WriteLine(string.Create(Invariant,
                        $"  trainable {plan.Plan.TrainableParameters:N0} of {plan.Plan.TotalParameters:N0} parameters ({plan.Plan.TrainablePercent:F2}%) from epoch {plan.Plan.Epoch + 1}"));
                    break;
                case FeaturesCachedEvent cached:
                    console.WriteLine(string.Create(Invariant, $"  cached the frozen backbone's features of {cached.Examples} examples in {cached.Seconds:F1} s ({cached.Source})"));
                    break;
                case TrainingStartedEvent start:
                    started = start;
                    break;
                case StepEvent step when started is { } s && (step.Step % s.StepsPerEpoch == 0 || step.Step == step.TotalSteps):
                    if (budget != BudgetKind.Epochs && step.Elapsed.TotalSeconds - lastLine < BudgetLineSeconds) break;
                    lastLine = step.Elapsed.TotalSeconds;
                    string of = budget == BudgetKind.Epochs ? "/" + s.Epochs.ToString(Invariant) : "";
                    console.WriteLine(string.Create(Invariant,
                        $"  epoch {step.Epoch + 1}{of}: loss {step.Loss:F4}, {step.SamplesPerSecond:F1} samples/s, {step.Elapsed.TotalSeconds:F1} s"));
                    break;
                case EvaluationEvent evaluation:
                    var shown = evaluation.Metrics.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal))
                        .Select(m => string.Create(Invariant, $"{m.Key} {m.Value:F4}"));
                    console.WriteLine($"  eval epoch {evaluation.Epoch + 1}, step {evaluation.Step}: {string.Join(", ", shown)}{(evaluation.IsBest ? " (best so far)" : "")}");
                    break;
                case AuditEvent audit:
                    console.MarkupLine("  freeze audit: " + (audit.Audit.Passed ? "[green]passed[/]" : "[red]FAILED[/] ") + (audit.Audit.Passed ? "" : Markup.Escape(audit.Audit.Summary)));
                    break;
            }
        }
    }
}
