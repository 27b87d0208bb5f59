using System.Text.Json.Nodes;
using SharpTune.Strategies;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

public sealed class RunRecorderTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("sharptune-run-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static TrainingPlan Plan(Strategy strategy, int epoch = 0)
    {
        using var model = TinyModels.Classifier("cls");
        return StrategyApplier.Apply(model, strategy, epoch);
    }

    private static AuditReport PassingAudit() => new([
        new AuditEntry("bert.embeddings.word_embeddings.weight", ParameterGroups.Embeddings, Trainable: false, Changed: false, 0),
        new AuditEntry("classifier.weight", ParameterGroups.Head, Trainable: true, Changed: true, 0.01),
    ]);

    private static EvaluationEvent Evaluation(int epoch, int step, double loss, double accuracy, bool best) =>
        new(epoch, step, loss + 0.1, new Dictionary<string, double> { ["loss"] = loss, ["accuracy"] = accuracy, ["macro_f1"] = accuracy - 0.05 }, best);

    private static StepEvent Step(int step, int total, double loss) =>
        new(Epoch: (step - 1) / 10, step, total, loss, 1e-3, 100, TimeSpan.FromSeconds(step * 0.1));

    private List<JsonObject> MetricLines() =>
        File.ReadAllLines(Path.Combine(directory, RunRecorder.MetricsFile)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void Events_become_parameter_table_metric_lines_and_audit_files()
    {
        var recorder = new RunRecorder(directory, stepInterval: 10);
        TrainingPlan plan = Plan(new FrozenStrategy());
        recorder.Report(new PlanEvent(plan));
        for (int s = 1; s <= 25; s++) recorder.Report(Step(s, 25, 1.0 / s));
        recorder.Report(Evaluation(2, 25, 0.4, 0.75, best: true));
        recorder.Report(new AuditEvent(PassingAudit()));

        string markdown = File.ReadAllText(Path.Combine(directory, RunRecorder.ParametersMarkdown));
        Assert.Contains("Strategy: frozen (epoch 0)", markdown);
        Assert.Contains("| head |", markdown);
        var parameters = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, RunRecorder.ParametersJson)))!;
        Assert.Equal(plan.TrainableParameters, parameters["trainable_parameters"]!.GetValue<long>());

        var lines = MetricLines();
        Assert.Equal(["step", "step", "step", "eval"], lines.Select(l => l["type"]!.GetValue<string>()));
        Assert.Equal([10, 20, 25, 25], lines.Select(l => l["step"]!.GetValue<int>()));
        Assert.Equal(0.1, lines[0]["train_loss"]!.GetValue<double>(), 12);
        JsonObject eval = lines[3];
        Assert.Equal(2, eval["epoch"]!.GetValue<int>());
        Assert.Equal(0.5, eval["train_loss"]!.GetValue<double>(), 12);
        Assert.Equal(0.75, eval["accuracy"]!.GetValue<double>());
        Assert.Equal(0.4, eval["loss"]!.GetValue<double>());
        Assert.True(eval["is_best"]!.GetValue<bool>());
        Assert.True(DateTime.TryParse(eval["time"]!.GetValue<string>(), out _));

        Assert.Contains("PASSED", File.ReadAllText(Path.Combine(directory, RunRecorder.AuditMarkdown)));
        Assert.True(JsonNode.Parse(File.ReadAllText(Path.Combine(directory, RunRecorder.AuditJson)))!["passed"]!.GetValue<bool>());
    }

    [Fact]
    public void Each_metric_line_is_on_disk_as_soon_as_it_is_reported()
    {
        var recorder = new RunRecorder(directory);
        recorder.Report(Evaluation(0, 5, 0.6, 0.5, best: true));
        Assert.Single(MetricLines());
        recorder.Report(Evaluation(1, 10, 0.5, 0.6, best: true));
        Assert.Equal(2, MetricLines().Count);
    }

    [Fact]
    public void Gradual_unfreezing_keeps_every_plan_with_the_latest_at_the_top_of_the_json()
    {
        var recorder = new RunRecorder(directory);
        recorder.Report(new PlanEvent(Plan(new GradualUnfreezingStrategy(), epoch: 0)));
        TrainingPlan later = Plan(new GradualUnfreezingStrategy(), epoch: 1);
        recorder.Report(new PlanEvent(later));

        string markdown = File.ReadAllText(Path.Combine(directory, RunRecorder.ParametersMarkdown));
        Assert.Contains("## From epoch 1", markdown);
        Assert.Contains("## From epoch 2", markdown);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, RunRecorder.ParametersJson)))!;
        Assert.Equal(1, json["epoch"]!.GetValue<int>());
        Assert.Equal(later.TrainableParameters, json["trainable_parameters"]!.GetValue<long>());
        Assert.Equal(2, json["plans"]!.AsArray().Count);
    }

    [Fact]
    public void A_new_recorder_starts_a_fresh_metrics_file()
    {
        new RunRecorder(directory).Report(Evaluation(0, 5, 0.6, 0.5, best: true));
        new RunRecorder(directory).Report(Evaluation(0, 7, 0.6, 0.5, best: true));
        Assert.Equal(7, Assert.Single(MetricLines())["step"]!.GetValue<int>());
    }

    [Fact]
    public void A_checkpoint_carries_the_record_so_far_and_a_resumed_record_starts_with_it_up_to_the_checkpoints_step()
    {
        // The first run: steps 1-6, a checkpoint assembled after step 4 (steps 5 and 6 come after it, before an interruption).
        string first = Path.Combine(directory, "first"), checkpoint = Path.Combine(first, "checkpoint-4");
        var recorder = new RunRecorder(first, stepInterval: 1);
        for (int s = 1; s <= 4; s++) recorder.Report(Step(s, 12, 1.0 / s));
        recorder.Report(Evaluation(0, 4, 0.6, 0.5, best: true));
        Directory.CreateDirectory(checkpoint);
        recorder.Report(new CheckpointWritingEvent(4, checkpoint));
        for (int s = 5; s <= 6; s++) recorder.Report(Step(s, 12, 1.0 / s));
        recorder.Report(Evaluation(0, 6, 0.5, 0.7, best: true));
        Assert.Equal(5, RunRecorder.ReadMetrics(checkpoint).Steps.Count + RunRecorder.ReadMetrics(checkpoint).Evaluations.Count);
        Assert.Equal(4, JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, RunRecorder.EvaluationFile)))!["step"]!.GetValue<int>());

        // The resumed run: the history up to step 4, then its own steps 5, 6 … once each.
        string resumed = Path.Combine(directory, "resumed");
        var again = new RunRecorder(resumed, stepInterval: 1);
        again.Report(new ResumedEvent(4, checkpoint));
        for (int s = 5; s <= 6; s++) again.Report(Step(s, 12, 1.0 / s));
        var (steps, evaluations) = RunRecorder.ReadMetrics(resumed);
        Assert.Equal([1, 2, 3, 4, 5, 6], steps.Select(e => e.Step));
        Assert.Equal([4], evaluations.Select(e => e.Step));
        Assert.Equal(4, JsonNode.Parse(File.ReadAllText(Path.Combine(resumed, RunRecorder.EvaluationFile)))!["step"]!.GetValue<int>());
        // The chart covers the whole run too.
        Assert.True(new FileInfo(again.WriteCharts()).Length > 0);
    }

    [Fact]
    public void A_checkpoint_without_a_record_resumes_with_the_run_directorys_lines_up_to_its_step()
    {
        // A checkpoint written before checkpoints carried the record, in a run stopped (and saved) after step 6.
        string run = Path.Combine(directory, "run"), checkpoint = Path.Combine(run, "checkpoint-4");
        var recorder = new RunRecorder(run, stepInterval: 2);
        for (int s = 1; s <= 6; s++) recorder.Report(Step(s, 12, 1.0 / s));
        Directory.CreateDirectory(checkpoint);

        string resumed = Path.Combine(directory, "resumed");
        new RunRecorder(resumed, stepInterval: 2).Report(new ResumedEvent(4, checkpoint + "/"));

        Assert.Equal([2, 4], RunRecorder.ReadMetrics(resumed).Steps.Select(e => e.Step));
    }

    [Fact]
    public void A_diverged_loss_is_written_as_null_not_as_invalid_json()
    {
        var recorder = new RunRecorder(directory, stepInterval: 1);
        recorder.Report(Step(1, 10, double.NaN));
        Assert.Null(Assert.Single(MetricLines())["train_loss"]);
    }

    [Fact]
    public void WriteCharts_draws_a_png_of_losses_and_metrics()
    {
        var recorder = new RunRecorder(directory);
        for (int s = 1; s <= 30; s++) recorder.Report(Step(s, 30, 1.0 / s));
        recorder.Report(Evaluation(0, 10, 0.6, 0.5, best: true));
        recorder.Report(Evaluation(1, 20, 0.5, 0.7, best: true));
        recorder.Report(Evaluation(2, 30, 0.45, 0.8, best: true));

        string path = recorder.WriteCharts();

        Assert.Equal(Path.Combine(directory, RunRecorder.ChartFile), path);
        byte[] png = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        Assert.True(png.Length > 5_000, $"{png.Length} bytes");
        Assert.False(File.Exists(AtomicFile.TemporaryPath(path)));
    }

    [Fact]
    public void WriteSummary_records_the_result_figures_and_extra_fields()
    {
        var recorder = new RunRecorder(directory);
        TrainingPlan plan = Plan(new FrozenStrategy());
        var best = Evaluation(1, 20, 0.5, 0.7, best: true);
        var result = new TrainingResult(plan, PassingAudit(), [Evaluation(0, 10, 0.6, 0.5, true), best], best,
            TrainSeconds: 12.5, SamplesPerSecond: 80, PaddingRatio: 0.25, UsedFeatureCache: true, Stopped: null);

        recorder.WriteSummary(result, new JsonObject { ["train_file"] = "train.csv" });

        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, RunRecorder.SummaryFile)))!;
        Assert.Equal(12.5, summary["train_seconds"]!.GetValue<double>());
        Assert.Equal(80, summary["samples_per_second"]!.GetValue<double>());
        Assert.Equal(0.25, summary["padding_ratio"]!.GetValue<double>());
        Assert.True(summary["used_feature_cache"]!.GetValue<bool>());
        Assert.True(summary["audit_passed"]!.GetValue<bool>());
        Assert.Equal(plan.TrainableParameters, summary["trainable_parameters"]!.GetValue<long>());
        Assert.Equal(plan.TotalParameters, summary["total_parameters"]!.GetValue<long>());
        Assert.Equal(20, summary["best_evaluation"]!["step"]!.GetValue<int>());
        Assert.Equal(0.7, summary["best_evaluation"]!["metrics"]!["accuracy"]!.GetValue<double>());
        Assert.Equal("train.csv", summary["train_file"]!.GetValue<string>());
    }
}
