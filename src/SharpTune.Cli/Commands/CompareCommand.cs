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
    [Description("Picks each run's best epoch and the best row: accuracy, macro_f1, mcc or loss (regression: pearson, spearman, mse, loss). " +
        "Default: macro_f1 (pearson for regression); unlike accuracy it is not fooled by always answering the majority class.")]
    public string? Metric { get; set; }

    [CommandOption("--train-limit <N>")]
    [Description("Use only the first N training examples.")]
    public int? TrainLimit { get; set; }

    [CommandOption("--eval-limit <N>")]
    [Description("Use only the first N evaluation examples.")]
    public int? EvalLimit { get; set; }

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
        IReadOnlyList<Strategy> strategies = ParseStrategies(settings.Strategies);
        TaskType? task = CommandSupport.ParseTask(settings.Task);
        if (settings.TrainLimit is <= 0) throw new SharpTuneException($"--train-limit must be positive, got {settings.TrainLimit}.");
        if (settings.EvalLimit is <= 0) throw new SharpTuneException($"--eval-limit must be positive, got {settings.EvalLimit}.");
        if (settings.Model is not null) CommandSupport.RequireDirectory(settings.Model, "--model");
        CommandSupport.RequireFile(settings.Train, "--train");
        CommandSupport.RequireFile(settings.Eval, "--eval");
        CheckDirectory(settings.Out, settings.Force);
        var training = new TrainingOptions
        {
            Epochs = settings.Epochs, BatchSize = settings.BatchSize, Seed = settings.Seed, Device = settings.Device,
            Precision = Models.Precisions.Parse(settings.Precision),
        }.Validate();

        LoadedData train = CommandSupport.Load(settings.Train, settings.DataOptions(task), console);
        LabelSet labels = train.Task == TaskType.Regression ? LabelSet.FromNames([train.Columns.Label!]) : LabelSet.FromTraining(train.Examples);
        LoadedData eval = CommandSupport.Load(settings.Eval, settings.DataOptions(train.Task), console);
        if (train.Task != TaskType.Regression) eval = labels.Check(eval);
        var trainExamples = train.Examples.Take(settings.TrainLimit ?? int.MaxValue).ToList();
        var evalExamples = eval.Examples.Take(settings.EvalLimit ?? int.MaxValue).ToList();
        int maxLength = settings.MaxLength ?? (settings.Model is null ? 128
            : Math.Min(128, Architectures.LoadConfig(Path.Combine(settings.Model, "config.json")).MaxInputLength));

        var options = new ComparisonOptions
        {
            Strategies = strategies, ModelDirectory = settings.Model, Head = settings.Head ?? "mean", Task = train.Task,
            MaxLength = maxLength, Training = training, LearningRate = settings.LearningRate, Metric = settings.Metric,
        }.Validate();
        var comparison = new StrategyComparison(settings.Out, options)
        {
            CommandLine = commandLine,
            Inputs = new JsonObject
            {
                ["train_file"] = settings.Train, ["train_examples"] = trainExamples.Count,
                ["eval_file"] = settings.Eval, ["eval_examples"] = evalExamples.Count,
                ["task"] = train.Task.ToString(),
                ["labels"] = new JsonArray(labels.Names.Select(n => (JsonNode)JsonValue.Create(n)).ToArray()),
            },
        };
        console.WriteLine($"Comparing {strategies.Count} strategies on {trainExamples.Count} training and {evalExamples.Count} eval examples " +
            $"({settings.Model ?? "packaged all-MiniLM-L6-v2"}, head {settings.Head ?? "mean"}, max length {maxLength}, {settings.Epochs} epoch(s), " +
            $"batch size {settings.BatchSize}, seed {settings.Seed}, best by {options.MetricOrDefault}).");

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
            result = comparison.Run(trainExamples, evalExamples, labels, new CompareProgress(console), stop.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }

        if (result.Stopped is not null) console.MarkupLineInterpolated($"[yellow]Stopped ({result.Stopped}); the finished rows are kept.[/]");
        // A terminal narrower than the whole table gets it in two halves (cost, then quality) rather than wrapped cells.
        if (console.Profile.Width >= WideTable) console.Write(Table(result));
        else
        {
            console.Write(Table(result, quality: false));
            console.Write(Table(result, cost: false));
        }
        string chart = result.ChartPath is null ? "" : ", " + Path.GetFileName(result.ChartPath);
        console.MarkupLineInterpolated($"Written: {Path.GetFullPath(result.JsonPath)}, {Path.GetFileName(result.MarkdownPath)}{chart}; one run directory per strategy.");
        return (result.Rows.All(r => r.AuditPassed) ? 0 : 2, result);
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
    public const int WideTable = 130;

    /// <summary>
    /// The comparison table: one row per strategy, the best one bold and starred; <paramref name="cost"/> columns (lr,
    /// trainable, time, samples/s, peak RSS) and/or <paramref name="quality"/> columns (metrics, best epoch, audit).
    /// Cells are compact (3.55M, 1e-4, 0.912); compare.md and compare.json hold the exact figures.
    /// </summary>
    public static Table Table(ComparisonResult result, bool cost = true, bool quality = true)
    {
        var invariant = CultureInfo.InvariantCulture;
        string[] metrics = quality ? StrategyComparison.ShownMetrics(result.Rows) : [];
        string part = cost && quality ? "" : cost ? " (cost)" : " (quality)";
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"Strategies compared{part}; ★ best by {Markup.Escape(result.Metric)}")
            .AddColumn(new TableColumn("strategy").NoWrap());
        if (cost)
            table.AddColumn(new TableColumn("lr").RightAligned()).AddColumn(new TableColumn("trainable").RightAligned().NoWrap())
                .AddColumn(new TableColumn("train time").RightAligned()).AddColumn(new TableColumn("samples/s").RightAligned())
                .AddColumn(new TableColumn("peak RSS").RightAligned());
        foreach (string metric in metrics) table.AddColumn(new TableColumn(metric).RightAligned());
        if (quality) table.AddColumn(new TableColumn("best epoch").RightAligned()).AddColumn("audit");
        for (int i = 0; i < result.Rows.Count; i++)
        {
            ComparisonRow row = result.Rows[i];
            bool best = i == result.BestIndex;
            string Cell(string text) => best ? $"[bold]{Markup.Escape(text)}[/]" : Markup.Escape(text);
            var cells = new List<string> { best ? $"[bold]★ {Markup.Escape(row.Strategy)}[/]" : "  " + Markup.Escape(row.Strategy) };
            if (cost)
                cells.AddRange([
                    Cell(row.LearningRate.ToString("0.###e+0", invariant)),
                    Cell(Short(row.TrainableParameters) + " " + row.TrainablePercent.ToString(row.TrainablePercent >= 1 ? "F1" : "F2", invariant) + "%"),
                    Cell(string.Create(invariant, $"{row.TrainSeconds:F1} s")),
                    Cell(row.SamplesPerSecond.ToString("F1", invariant)),
                    Cell(StrategyComparison.Mib(row.PeakRssBytes) + " MiB" + (row.PeakRssPerRun ? "" : " so far")),
                ]);
            cells.AddRange(metrics.Select(m => Cell(row.Metric(m) is { } v ? v.ToString("F3", invariant) : "–")));
            if (quality)
            {
                cells.Add(Cell(row.BestEpoch.ToString(invariant)));
                cells.Add(row.AuditPassed ? "[green]passed[/]" : "[red]FAILED[/]");
            }
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

    /// <summary>Compact progress: a header per strategy, one line per epoch and per evaluation, the audit verdict.</summary>
    private sealed class CompareProgress(IAnsiConsole console) : IProgress<ComparisonEvent>
    {
        private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
        private TrainingStartedEvent? started;

        public void Report(ComparisonEvent value)
        {
            switch (value)
            {
                case StrategyStartedEvent start:
                    console.MarkupLine(string.Create(Invariant,
                        $"[bold][[{start.Index + 1}/{start.Count}]] {Markup.Escape(start.Strategy.Name)}[/] (lr {start.LearningRate:0.###e+0}) → {Markup.Escape(start.RunDirectory)}"));
                    break;
                case StrategyTrainingEvent { Event: var e }:
                    OnTraining(e);
                    break;
                case StrategyFinishedEvent finished:
                    console.MarkupLine(string.Create(Invariant,
                        $"  done: {finished.Row.TrainSeconds:F1} s, {finished.Row.SamplesPerSecond:F1} samples/s, best epoch {finished.Row.BestEpoch}"));
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
                    console.WriteLine(string.Create(Invariant, $"  cached the frozen backbone's features of {cached.Examples} examples in {cached.Seconds:F1} s"));
                    break;
                case TrainingStartedEvent start:
                    started = start;
                    break;
                case StepEvent step when started is { } s && (step.Step % s.StepsPerEpoch == 0 || step.Step == step.TotalSteps):
                    console.WriteLine(string.Create(Invariant,
                        $"  epoch {step.Epoch + 1}/{s.Epochs}: loss {step.Loss:F4}, {step.SamplesPerSecond:F1} samples/s, {step.Elapsed.TotalSeconds:F1} s"));
                    break;
                case EvaluationEvent evaluation:
                    var shown = evaluation.Metrics.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal))
                        .Select(m => string.Create(Invariant, $"{m.Key} {m.Value:F4}"));
                    console.WriteLine($"  eval epoch {evaluation.Epoch + 1}: {string.Join(", ", shown)}{(evaluation.IsBest ? " (best so far)" : "")}");
                    break;
                case AuditEvent audit:
                    console.MarkupLine("  freeze audit: " + (audit.Audit.Passed ? "[green]passed[/]" : "[red]FAILED[/] ") + (audit.Audit.Passed ? "" : Markup.Escape(audit.Audit.Summary)));
                    break;
            }
        }
    }
}
