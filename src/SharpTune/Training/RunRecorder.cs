using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Strategies;

namespace SharpTune.Training;

/// <summary>
/// Writes a training run's record into a run directory as the events arrive, so that a crash loses nothing
/// already written:
/// <list type="bullet">
/// <item><c>parameters.md</c> / <c>parameters.json</c>: the parameter table (gradual unfreezing: one per change).</item>
/// <item><c>metrics.jsonl</c>: one JSON object per line, appended and flushed at once — <c>"type": "step"</c> every
/// <see cref="StepInterval"/> optimizer steps (running train loss) and <c>"type": "eval"</c> per evaluation.</item>
/// <item><c>audit.md</c> / <c>audit.json</c>: the freeze audit.</item>
/// <item><c>evaluation.json</c>: the best evaluation's metrics, per-class scores and confusion matrix (<see cref="EvaluationJson"/>),
/// rewritten whenever a better one arrives — the weights the run keeps.</item>
/// <item><c>training.png</c> (<see cref="WriteCharts"/>) and <c>summary.json</c> (<see cref="WriteSummary"/>) at the end.</item>
/// </list>
/// A run directory keeps one run: a previous run's record files there are replaced. A resumed run's record is the whole
/// run's: every checkpoint carries metrics.jsonl and evaluation.json as they were when it was written
/// (<see cref="CheckpointWritingEvent"/>), and a run resumed from it (<see cref="ResumedEvent"/>) starts its record with
/// them — the lines up to the checkpoint's step, so that none written after it, before an interruption, come twice.
/// </summary>
public sealed class RunRecorder : IProgress<TrainingEvent>
{
    /// <summary>File names of the record, in the run directory.</summary>
    public const string ParametersMarkdown = "parameters.md", ParametersJson = "parameters.json", MetricsFile = "metrics.jsonl",
        AuditMarkdown = "audit.md", AuditJson = "audit.json", ChartFile = "training.png", SummaryFile = "summary.json",
        EvaluationFile = "evaluation.json";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    private readonly List<TrainingPlan> plans = [];
    private readonly List<StepEvent> steps = [];
    private readonly List<EvaluationEvent> evaluations = [];
    private TimeSpan lastElapsed;

    /// <summary>Records into <paramref name="directory"/> (created if needed), starting a fresh metrics.jsonl.</summary>
    /// <param name="directory">The run directory.</param>
    /// <param name="stepInterval">Write a <c>step</c> line every this many optimizer steps (and at the last step).</param>
    public RunRecorder(string directory, int stepInterval = 10)
    {
        if (stepInterval <= 0) throw new SharpTuneException($"--log-steps must be positive, got {stepInterval}.");
        Directory = directory;
        StepInterval = stepInterval;
        System.IO.Directory.CreateDirectory(directory);
        foreach (string stale in new[] { MetricsFile, ChartFile, SummaryFile, AuditMarkdown, AuditJson, EvaluationFile })
            File.Delete(PathOf(stale));
    }

    /// <summary>The run directory.</summary>
    public string Directory { get; }

    /// <summary>A <c>step</c> line is written every this many optimizer steps.</summary>
    public int StepInterval { get; }

    /// <summary>The full path of a file of the run directory.</summary>
    public string PathOf(string fileName) => Path.Combine(Directory, fileName);

    /// <inheritdoc />
    public void Report(TrainingEvent value)
    {
        switch (value)
        {
            case PlanEvent plan:
                plans.Add(plan.Plan);
                WriteParameters();
                break;
            case StepEvent step:
                steps.Add(step);
                lastElapsed = step.Elapsed;
                if (step.Step % StepInterval == 0 || step.Step == step.TotalSteps)
                    AppendLine(new JsonObject
                    {
                        ["type"] = "step",
                        ["epoch"] = step.Epoch,
                        ["step"] = step.Step,
                        ["train_loss"] = Number(step.Loss),
                        ["learning_rate"] = Number(step.LearningRate),
                        ["samples_per_second"] = Number(step.SamplesPerSecond),
                        ["elapsed_seconds"] = Number(step.Elapsed.TotalSeconds),
                        ["time"] = Now(),
                    });
                break;
            case EvaluationEvent evaluation:
                evaluations.Add(evaluation);
                var line = new JsonObject
                {
                    ["type"] = "eval",
                    ["epoch"] = evaluation.Epoch,
                    ["step"] = evaluation.Step,
                    ["train_loss"] = Number(evaluation.TrainLoss),
                };
                foreach (var (name, metric) in evaluation.Metrics) line[name] = Number(metric);
                line["is_best"] = evaluation.IsBest;
                line["elapsed_seconds"] = Number(lastElapsed.TotalSeconds);
                line["time"] = Now();
                AppendLine(line);
                if (evaluation.IsBest) WriteAtomically(EvaluationFile, BestEvaluationJson(evaluation).ToJsonString(Indented));
                break;
            case ResumedEvent resumed:
                Continue(resumed.Directory, resumed.Step);
                break;
            case CheckpointWritingEvent checkpoint:
                foreach (string name in CarriedFiles)
                    if (File.Exists(PathOf(name))) File.Copy(PathOf(name), Path.Combine(checkpoint.Directory, name), overwrite: true);
                break;
            case AuditEvent audit:
                WriteAtomically(AuditMarkdown, audit.Audit.ToMarkdown());
                WriteAtomically(AuditJson, audit.Audit.ToJson().ToJsonString(Indented));
                break;
        }
    }

    /// <summary>
    /// Draws training.png: the running train loss per step and the eval loss per evaluation (left axis), and the
    /// task's headline metrics per evaluation (right axis). Returns its path.
    /// </summary>
    public string WriteCharts()
    {
        string path = PathOf(ChartFile);
        AtomicFile.Write(path, temporary => RunCharts.Write(temporary, steps, evaluations));
        return path;
    }

    /// <summary>
    /// Writes summary.json: the run's figures (time, throughput, padding, cache, best evaluation, audit, trainable
    /// counts) plus the properties of <paramref name="extra"/> (e.g. the command's options). Returns its path.
    /// </summary>
    public string WriteSummary(TrainingResult result, JsonObject? extra = null)
    {
        var summary = new JsonObject
        {
            ["strategy"] = result.Plan.Strategy,
            ["train_seconds"] = Number(result.TrainSeconds),
            ["samples_per_second"] = Number(result.SamplesPerSecond),
            ["padding_ratio"] = Number(result.PaddingRatio),
            ["used_feature_cache"] = result.UsedFeatureCache,
            ["stopped"] = result.Stopped,
            ["evaluations"] = result.Evaluations.Count,
            ["best_evaluation"] = result.BestEvaluation is { } best ? EvaluationObject(best) : null,
            ["audit_passed"] = result.Audit.Passed,
            ["audit_summary"] = result.Audit.Summary,
            ["total_parameters"] = result.Plan.TotalParameters,
            ["trainable_parameters"] = result.Plan.TrainableParameters,
            ["trainable_percent"] = Math.Round(result.Plan.TrainablePercent, 4),
        };
        if (extra is not null)
            foreach (var (key, node) in extra) summary[key] = node?.DeepClone();
        WriteAtomically(SummaryFile, summary.ToJsonString(Indented));
        return PathOf(SummaryFile);
    }

    /// <summary>
    /// Reads a run directory's metrics.jsonl back into its step and evaluation events (the one reader of the file).
    /// A line that is not JSON, or lacks its "type", is an error naming the file and line.
    /// </summary>
    public static (IReadOnlyList<StepEvent> Steps, IReadOnlyList<EvaluationEvent> Evaluations) ReadMetrics(string directory)
    {
        string path = Path.Combine(directory, MetricsFile);
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: not found; a run directory written by train or compare has it.");
        var steps = new List<StepEvent>();
        var evaluations = new List<EvaluationEvent>();
        string[] notMetrics = ["type", "epoch", "step", "train_loss", "is_best", "elapsed_seconds", "time"];
        foreach (var (line, document, error) in Data.JsonLines.Read(File.ReadAllText(path), path))
        {
            if (error is not null) throw new SharpTuneException($"{path}:{line}: {error}");
            using (document)
            {
                JsonElement root = document!.RootElement;
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type", out JsonElement type) || type.ValueKind != JsonValueKind.String)
                    throw new SharpTuneException($"{path}:{line}: expected an object with a \"type\" (step or eval).");
                int epoch = Int(root, "epoch", path, line), step = Int(root, "step", path, line);
                switch (type.GetString())
                {
                    case "step":
                        steps.Add(new StepEvent(epoch, step, 0, Double(root, "train_loss"), Double(root, "learning_rate"), Double(root, "samples_per_second"),
                            TimeSpan.FromSeconds(double.IsFinite(Double(root, "elapsed_seconds")) ? Double(root, "elapsed_seconds") : 0)));
                        break;
                    case "eval":
                        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
                        foreach (JsonProperty property in root.EnumerateObject())
                            if (!notMetrics.Contains(property.Name)) metrics[property.Name] = Double(root, property.Name);
                        bool isBest = root.TryGetProperty("is_best", out JsonElement best) && best.ValueKind == JsonValueKind.True;
                        evaluations.Add(new EvaluationEvent(epoch, step, Double(root, "train_loss"), metrics, isBest));
                        break;
                    default:
                        throw new SharpTuneException($"{path}:{line}: unknown \"type\" '{type.GetString()}'; expected step or eval.");
                }
            }
        }
        return (steps, evaluations);
    }

    // The record files a checkpoint carries.
    private static readonly string[] CarriedFiles = [MetricsFile, EvaluationFile];

    /// <summary>
    /// Starts the record of a run resumed from <paramref name="checkpoint"/> (written after <paramref name="step"/>) with the
    /// run's history: the checkpoint's metrics.jsonl lines up to <paramref name="step"/> (a checkpoint written before
    /// checkpoints carried it: the run directory's own, if any) and its evaluation.json.
    /// </summary>
    private void Continue(string checkpoint, int step)
    {
        string source = Path.Combine(checkpoint, MetricsFile);
        if (!File.Exists(source)) source = Path.Combine(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(checkpoint)))!, MetricsFile);
        if (File.Exists(source))
        {
            string text = File.ReadAllText(source);
            string[] lines = text.Split('\n');
            var kept = new StringBuilder();
            foreach (var (line, document, error) in Data.JsonLines.Read(text, source))
            {
                if (error is not null) throw new SharpTuneException($"{source}:{line}: {error}");
                using (document)
                    if (Int(document!.RootElement, "step", source, line) <= step) kept.Append(lines[line - 1].TrimEnd('\r')).Append('\n');
            }
            AppendText(kept.ToString());
            var (earlierSteps, earlierEvaluations) = ReadMetrics(Directory);
            steps.AddRange(earlierSteps);
            evaluations.AddRange(earlierEvaluations);
        }
        string best = Path.Combine(checkpoint, EvaluationFile);
        if (File.Exists(best)) AtomicFile.WriteText(PathOf(EvaluationFile), File.ReadAllText(best));
    }

    private static double Double(JsonElement root, string name) =>
        root.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : double.NaN;

    private static int Int(JsonElement root, string name, string path, int line) =>
        root.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number) ? number
            : throw new SharpTuneException($"{path}:{line}: \"{name}\" must be an integer.");

    private static JsonObject EvaluationObject(EvaluationEvent evaluation)
    {
        var metrics = new JsonObject();
        foreach (var (name, value) in evaluation.Metrics) metrics[name] = Number(value);
        return new JsonObject { ["epoch"] = evaluation.Epoch, ["step"] = evaluation.Step, ["train_loss"] = Number(evaluation.TrainLoss), ["metrics"] = metrics };
    }

    private static JsonObject BestEvaluationJson(EvaluationEvent evaluation)
    {
        JsonObject json = EvaluationObject(evaluation);
        foreach (var (name, node) in SharpTune.Training.EvaluationJson.Details(evaluation.Output?.Details)) json[name] = node?.DeepClone();
        return json;
    }

    private void WriteParameters()
    {
        var markdown = new StringBuilder();
        for (int i = 0; i < plans.Count; i++)
        {
            if (plans.Count > 1) markdown.AppendLine(CultureInfo.InvariantCulture, $"## From epoch {plans[i].Epoch + 1}").AppendLine();
            markdown.AppendLine(plans[i].ToMarkdown());
        }
        WriteAtomically(ParametersMarkdown, markdown.ToString());

        // The latest plan at the top level; every plan of the run (gradual unfreezing adds one per change) under "plans".
        JsonObject json = plans[^1].ToJson();
        json["plans"] = new JsonArray(plans.Select(p => (JsonNode)p.ToJson()).ToArray());
        WriteAtomically(ParametersJson, json.ToJsonString(Indented));
    }

    // One line per call, opened for append and closed (flushed) before returning: a crash keeps every line written.
    private void AppendLine(JsonObject line) => AppendText(line.ToJsonString() + "\n");

    private void AppendText(string lines)
    {
        using var stream = new FileStream(PathOf(MetricsFile), FileMode.Append, FileAccess.Write, FileShare.Read);
        byte[] bytes = Encoding.UTF8.GetBytes(lines);
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    }

    // Rewritten files go through a temporary file, so a reader never sees half of one.
    private void WriteAtomically(string fileName, string content) => AtomicFile.WriteText(PathOf(fileName), content);

    private static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    private static string Now() => DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
}
