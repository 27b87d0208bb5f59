using System.Globalization;
using System.Reflection;
using SharpTune.Hub;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli;

/// <summary>
/// Lets every <c>--model</c> option name a model on the Hugging Face hub: before a command runs, a value that is not an
/// existing local path and reads as <c>org/name[@revision]</c> is downloaded into the hub cache (<see cref="HubClient"/>,
/// options from the environment: HF_ENDPOINT, HF_HOME / HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE) and replaced by its
/// snapshot directory, which the command then reads as any local model directory. Progress goes to <paramref name="log"/>
/// (standard error), so that a command's standard output stays its own.
/// </summary>
internal sealed class HubModels(IAnsiConsole log) : ICommandInterceptor
{
    /// <inheritdoc />
    public void Intercept(CommandContext context, CommandSettings settings)
    {
        foreach (PropertyInfo property in settings.GetType().GetProperties())
        {
            if (property.PropertyType != typeof(string) || !property.CanWrite) continue;
            if (property.GetCustomAttribute<CommandOptionAttribute>() is not { } option || !option.LongNames.Contains("model")) continue;
            if (property.GetValue(settings) is string value) property.SetValue(settings, Resolve(value, log));
        }
    }

    /// <summary>
    /// <paramref name="value"/> itself when it is an existing file or directory or no hub id (the command then reports
    /// it as a missing path); else the snapshot directory of the hub model it names. Failures name <c>--model</c>.
    /// </summary>
    public static string Resolve(string value, IAnsiConsole log, HubOptions? options = null)
    {
        if (Directory.Exists(value) || File.Exists(value) || !HubModelId.TryParse(value, out HubModelId id)) return value;
        try
        {
            using var client = new HubClient(options ?? HubOptions.FromEnvironment());
            var progress = new HubProgress(log);
            HubSnapshot snapshot = progress.Run(() => client.Download(id, progress));
            log.MarkupLineInterpolated($"[grey]Model {id}: {snapshot.Path} ({snapshot.Files.Count} files, {snapshot.Downloaded} downloaded).[/]");
            return snapshot.Path;
        }
        catch (SharpTuneException e)
        {
            throw new SharpTuneException($"--model {e.Message}", e);
        }
    }
}

/// <summary>
/// Shows a hub download: on a terminal a live bar per file (bytes, speed, time left); written to a file or a pipe, one
/// line per downloaded file. Retries and the use of a cached snapshot when the hub cannot be reached are said.
/// </summary>
internal sealed class HubProgress(IAnsiConsole console) : IProgress<HubEvent>
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
    private readonly Dictionary<string, ProgressTask> bars = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTime> started = new(StringComparer.Ordinal);
    private ProgressContext? live;

    /// <summary>Whether the bars are live (an interactive terminal that understands ANSI).</summary>
    public bool Live { get; } = console.Profile.Capabilities.Interactive && console.Profile.Capabilities.Ansi;

    /// <summary>Runs <paramref name="download"/> under the live display (or directly when not live).</summary>
    public T Run<T>(Func<T> download)
    {
        if (!Live) return download();
        return console.Progress().AutoClear(true).HideCompleted(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                live = context;
                try { return download(); }
                finally { live = null; }
            });
    }

    /// <inheritdoc />
    public void Report(HubEvent value)
    {
        switch (value)
        {
            case HubResolvedEvent resolved:
                console.MarkupLineInterpolated($"[grey]Hub: {resolved.Model} is commit {resolved.Commit}{(resolved.FromCache ? " (from the cache, no request)" : "")}.[/]");
                break;
            case HubCacheFallbackEvent fallback:
                console.MarkupLineInterpolated($"[yellow]Hub: {fallback.Reason}; using the cached snapshot of {fallback.Model} (commit {fallback.Commit}).[/]");
                break;
            case HubRetryEvent retry:
                console.MarkupLineInterpolated($"[yellow]Hub: {retry.File}: {retry.Reason}; resuming from byte {retry.ResumeFrom}.[/]");
                break;
            case HubFileStartedEvent start:
                started[start.File] = DateTime.UtcNow;
                if (live is not null)
                {
                    if (!bars.TryGetValue(start.File, out var bar)) bars[start.File] = bar = live.AddTask(Markup.Escape(start.File), maxValue: Math.Max(1, start.Size));
                    bar.Value = start.ResumeFrom;
                }
                break;
            case HubFileProgressEvent step:
                if (bars.TryGetValue(step.File, out var task)) task.Value = step.Bytes;
                break;
            case HubFileFinishedEvent done when done.Downloaded:
                if (bars.Remove(done.File, out var finished))
                {
                    finished.Value = finished.MaxValue;
                    finished.StopTask();
                }
                double seconds = started.TryGetValue(done.File, out var since) ? (DateTime.UtcNow - since).TotalSeconds : 0;
                console.MarkupLine(Markup.Escape(string.Create(Invariant, $"Hub: downloaded {done.File} ({done.Size / 1048576.0:F1} MiB, {seconds:F1} s).")));
                break;
        }
    }
}
