using System.Globalization;
using SharpTune.Inference;
using SharpTune.Strategies;
using SharpTune.Training;
using Spectre.Console;

namespace SharpTune.Cli;

/// <summary>
/// Shows a training run on the console: the parameter table, a progress bar per epoch (loss, samples/s, ETA),
/// evaluations, early stopping and the freeze audit. On a terminal the bars are live; when the output is
/// redirected (not interactive) it prints one line per epoch and per evaluation instead.
/// Corpus embedding (<c>embed --data</c>) gets one bar (texts, texts/s, ETA), or a line per tenth of the file when redirected.
/// </summary>
public sealed class ConsoleProgress(IAnsiConsole console) : IProgress<TrainingEvent>, IProgress<CorpusProgress>
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
    private ProgressContext? live;
    private ProgressTask? bar;
    private TrainingStartedEvent? started;
    private long shownTenth = -1;

    /// <summary>Whether the progress bars are live (an interactive terminal that understands ANSI).</summary>
    public bool Live { get; } = console.Profile.Capabilities.Interactive && console.Profile.Capabilities.Ansi;

    /// <summary>Runs <paramref name="training"/> under the live progress display (or directly when not live).</summary>
    public T Run<T>(Func<T> training)
    {
        if (!Live) return training();
        return console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(context =>
            {
                live = context;
                try { return training(); }
                finally { live = null; }
            });
    }

    /// <inheritdoc />
    public void Report(TrainingEvent value)
    {
        switch (value)
        {
            case PlanEvent plan: WritePlan(plan.Plan); break;
            case FeaturesCachedEvent cached:
                console.MarkupLineInterpolated($"[grey]Cached the frozen backbone's features of {cached.Examples} examples in {cached.Seconds:F1} s ({cached.Source}, {cached.Bytes / 1048576.0:F1} MiB).[/]");
                break;
            case TrainingStartedEvent start:
                started = start;
                console.MarkupLineInterpolated(
                    $"Training: {start.Epochs} epoch(s) × {start.StepsPerEpoch} steps, {start.Examples} examples, padded/real tokens {start.PaddingRatio:F3}{(start.FromFeatureCache ? ", head on cached features" : "")}.");
                break;
            case StepEvent step: OnStep(step); break;
            case EvaluationEvent evaluation:
                console.MarkupLine(Markup.Escape(EvaluationLine(evaluation)) + (evaluation.IsBest ? " [green](best)[/]" : ""));
                break;
            case EarlyStoppingEvent stop:
                CloseBar();
                console.MarkupLineInterpolated(
                    $"[yellow]Early stopping:[/] no better {stop.Metric} for the patience given; restored the weights of epoch {stop.BestEpoch + 1}, step {stop.BestStep} ({stop.Metric} {stop.BestValue:F4}).");
                break;
            case AuditEvent audit:
                CloseBar();
                WriteAudit(audit.Audit);
                break;
        }
    }

    /// <inheritdoc />
    public void Report(CorpusProgress value)
    {
        string status = string.Create(Invariant,
            $"embedded {value.Done}/{value.Total} texts  {value.TextsPerSecond:F1} texts/s  ETA {(value.Done > value.ResumedFrom ? Clock(value.Remaining) : "--:--")}");
        if (live is not null)
        {
            bar ??= live.AddTask(Markup.Escape(status), maxValue: value.Total);
            bar.Description = Markup.Escape(status);
            bar.Value = value.Done;
            if (value.Done == value.Total) CloseBar();
            return;
        }
        long tenth = 10 * value.Done / Math.Max(1, value.Total);
        if (tenth == shownTenth) return;
        shownTenth = tenth;
        console.WriteLine(status);
    }

    private void OnStep(StepEvent step)
    {
        int stepsPerEpoch = started?.StepsPerEpoch ?? step.TotalSteps;
        int epochs = started?.Epochs ?? 1;
        int inEpoch = step.Step - step.Epoch * stepsPerEpoch;
        string status = string.Create(Invariant,
            $"epoch {step.Epoch + 1}/{epochs}  loss {step.Loss:F4}  {step.SamplesPerSecond:F0} samples/s  ETA {Clock(step.Remaining)}");
        if (live is not null)
        {
            if (bar is null || bar.Description.StartsWith($"epoch {step.Epoch + 1}/", StringComparison.Ordinal) is false)
            {
                CloseBar();
                bar = live.AddTask(Markup.Escape(status), maxValue: stepsPerEpoch);
            }
            bar.Description = Markup.Escape(status);
            bar.Value = inEpoch;
            return;
        }
        if (inEpoch == stepsPerEpoch || step.Step == step.TotalSteps)
            console.WriteLine(string.Create(Invariant,
                $"epoch {step.Epoch + 1}/{epochs}: step {step.Step}/{step.TotalSteps}, loss {step.Loss:F4}, {step.SamplesPerSecond:F0} samples/s, {step.Elapsed.TotalSeconds:F1} s elapsed, ETA {Clock(step.Remaining)}"));
    }

    private void CloseBar()
    {
        if (bar is null) return;
        bar.StopTask();
        bar = null;
    }

    private static string EvaluationLine(EvaluationEvent evaluation)
    {
        var shown = evaluation.Metrics.Where(m => !m.Key.StartsWith(MetricNames.ClassF1Prefix, StringComparison.Ordinal))
            .Select(m => string.Create(Invariant, $"{m.Key} {m.Value:F4}"));
        return string.Create(Invariant, $"eval epoch {evaluation.Epoch + 1} step {evaluation.Step}: train loss {evaluation.TrainLoss:F4}, ") + string.Join(", ", shown);
    }

    private void WritePlan(TrainingPlan plan) => console.Write(PlanTable(plan));

    /// <summary>The parameter table of a plan: one row per group, then the totals.</summary>
    internal static Table PlanTable(TrainingPlan plan)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .Title(string.Create(Invariant, $"Strategy [bold]{Markup.Escape(plan.Strategy)}[/] (from epoch {plan.Epoch + 1})"))
            .AddColumn("group").AddColumn(new TableColumn("tensors").RightAligned().NoWrap()).AddColumn(new TableColumn("parameters").RightAligned().NoWrap())
            .AddColumn(new TableColumn("trainable").RightAligned().NoWrap()).AddColumn("status").AddColumn(new TableColumn("learning rate").RightAligned().NoWrap()).AddColumn("mode");
        foreach (PlanRow row in plan.Rows)
        {
            string status = row.TrainableParameters == 0 ? $"[grey]{Markup.Escape(row.Status)}[/]" : $"[green]{Markup.Escape(row.Status)}[/]";
            table.AddRow(Markup.Escape(row.Group), row.Tensors.ToString(Invariant), row.Parameters.ToString("N0", Invariant),
                row.TrainableParameters.ToString("N0", Invariant), status, Markup.Escape(row.LearningRate), row.Mode);
        }
        table.AddRow("[bold]total[/]", plan.Rows.Sum(r => r.Tensors).ToString(Invariant), $"[bold]{plan.TotalParameters.ToString("N0", Invariant)}[/]",
            $"[bold]{plan.TrainableParameters.ToString("N0", Invariant)}[/]", $"[bold]{plan.TrainablePercent.ToString("F2", Invariant)}% trainable[/]", "", "");
        return table;
    }

    private void WriteAudit(AuditReport audit)
    {
        string verdict = audit.Passed ? "[green bold]PASSED[/]" : "[red bold]FAILED[/]";
        string detail = audit.Summary[(audit.Summary.IndexOf(':') + 1)..].Trim();
        console.MarkupLine($"Freeze audit: {verdict} {Markup.Escape(detail)}");
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("group").AddColumn(new TableColumn("frozen tensors").RightAligned()).AddColumn(new TableColumn("unchanged").RightAligned())
            .AddColumn(new TableColumn("trainable tensors").RightAligned()).AddColumn(new TableColumn("changed").RightAligned());
        foreach (var g in audit.Groups())
        {
            string Count(int value, int of) => value == of ? value.ToString(Invariant) : $"[red]{value}[/]";
            table.AddRow(Markup.Escape(g.Group), g.Frozen.ToString(Invariant), Count(g.FrozenUnchanged, g.Frozen),
                g.Trainable.ToString(Invariant), Count(g.TrainableChanged, g.Trainable));
        }
        console.Write(table);
    }

    private static string Clock(TimeSpan time) => time.TotalHours >= 1
        ? time.ToString(@"h\:mm\:ss", Invariant)
        : time.ToString(@"mm\:ss", Invariant);
}
