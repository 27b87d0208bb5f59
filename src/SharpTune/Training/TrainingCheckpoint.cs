using System.Globalization;
using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>
/// Everything a run needs to continue exactly where it stopped, beside the model files of a checkpoint directory
/// (<c>RUN/checkpoint-STEP/</c>): the position (epoch, batch, step — the data order is a function of seed and epoch,
/// the schedule of the step, and gradual unfreezing of the epoch), AdamW's moments and step per parameter, the torch
/// random-number generator state (dropout), the running loss, the evaluations so far and the best one's weights, the
/// training time so far (a time budget continues), and for a LoRA run its wrapped layers unmerged (the model files beside
/// hold the merged weights, which cannot be split back exactly). Tensors go into <see cref="TensorsFile"/>, the rest into
/// <see cref="StateFile"/>.
/// </summary>
public sealed class TrainingCheckpoint : IDisposable
{
    /// <summary>The JSON part.</summary>
    public const string StateFile = "trainer_state.json";
    /// <summary>The tensors: <c>rng_state</c>, <c>optimizer.exp_avg.KEY</c>, <c>optimizer.exp_avg_sq.KEY</c>, <c>best.KEY</c>, <c>lora.KEY</c>.</summary>
    public const string TensorsFile = "trainer_state.safetensors";
    /// <summary>Checkpoint directories are named this plus the step.</summary>
    public const string DirectoryPrefix = "checkpoint-";
    private const int FormatVersion = 1;

    /// <summary>Epoch to continue in (zero-based); equal to the number of epochs when the run had finished.</summary>
    public required int Epoch { get; init; }
    /// <summary>First batch of <see cref="Epoch"/> not trained yet.</summary>
    public required int Batch { get; init; }
    /// <summary>Optimizer steps done.</summary>
    public required int Step { get; init; }
    /// <summary>Training examples processed.</summary>
    public required long Samples { get; init; }
    /// <summary>Sum and count of the batch losses of the epoch so far (the reported running loss).</summary>
    public required double LossSum { get; init; }
    /// <summary>See <see cref="LossSum"/>.</summary>
    public required int LossCount { get; init; }
    /// <summary>Evaluations since the best one (early stopping's patience).</summary>
    public required int EvaluationsWithoutImprovement { get; init; }
    /// <summary>Every evaluation so far.</summary>
    public required IReadOnlyList<EvaluationEvent> Evaluations { get; init; }
    /// <summary>Index into <see cref="Evaluations"/> of the best one, or null.</summary>
    public required int? BestIndex { get; init; }
    /// <summary>What must not change on resume: epochs, batch size, gradient accumulation, seed, strategy, examples.</summary>
    public required IReadOnlyDictionary<string, string> Fixed { get; init; }
    /// <summary>AdamW state per parameter key.</summary>
    public required IReadOnlyDictionary<string, (long Step, Tensor ExpAvg, Tensor ExpAvgSq)> Optimizer { get; init; }
    /// <summary>The CPU generator's state.</summary>
    public required Tensor RandomState { get; init; }
    /// <summary>The best evaluation's trainable weights, or null.</summary>
    public required IReadOnlyDictionary<string, Tensor>? BestWeights { get; init; }
    /// <summary>
    /// Seconds of training so far (evaluation excluded), so that a time budget (<see cref="TrainingOptions.MaxSeconds"/>)
    /// continues where it stopped and throughput counts the whole run.
    /// </summary>
    public double TrainSeconds { get; init; }
    /// <summary>Wall seconds of the run so far (evaluations included), so that a resumed run's elapsed time and remaining-time estimate continue; null in checkpoints written before it was recorded.</summary>
    public double? ElapsedSeconds { get; init; }
    /// <summary>
    /// A LoRA run's wrapped layers as they train, by model key (<c>….query.base_layer.weight</c>, <c>….query.lora_A.weight</c>
    /// …, see <see cref="Lora.LoraInjector.AdapterState"/>); null for other strategies.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor>? Adapters { get; init; }

    /// <summary>The directory of the checkpoint after <paramref name="step"/> in <paramref name="runDirectory"/>.</summary>
    public static string DirectoryOf(string runDirectory, int step) =>
        Path.Combine(runDirectory, DirectoryPrefix + step.ToString(CultureInfo.InvariantCulture));

    /// <summary>The complete checkpoint directories of <paramref name="runDirectory"/>, oldest first.</summary>
    public static IReadOnlyList<(int Step, string Path)> List(string runDirectory)
    {
        if (!Directory.Exists(runDirectory)) return [];
        var found = new List<(int, string)>();
        foreach (string path in Directory.EnumerateDirectories(runDirectory, DirectoryPrefix + "*"))
            if (int.TryParse(Path.GetFileName(path).AsSpan(DirectoryPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int step) &&
                File.Exists(Path.Combine(path, StateFile)))
                found.Add((step, path));
        return found.OrderBy(f => f.Item1).ToList();
    }

    /// <summary>The newest checkpoint directory of <paramref name="runDirectory"/>; an error naming it when there is none.</summary>
    public static string Newest(string runDirectory)
    {
        var all = List(runDirectory);
        return all.Count > 0 ? all[^1].Path
            : throw new SharpTuneException($"{runDirectory}: --resume found no {DirectoryPrefix}STEP directory with {StateFile} (was the run started with --save-steps?).");
    }

    /// <summary>
    /// Writes the checkpoint directory as a whole (<see cref="StagedDirectory"/>): <paramref name="writeModel"/> puts the
    /// model files in it, then the trainer state follows. Keeps the newest <paramref name="keep"/> checkpoints (null: all).
    /// </summary>
    public void Save(string runDirectory, Action<string> writeModel, int? keep)
    {
        StagedDirectory.Write(DirectoryOf(runDirectory, Step), directory =>
        {
            writeModel(directory);
            Write(directory);
        });
        if (keep is { } k)
            foreach (var (_, path) in List(runDirectory).SkipLast(k))
                Directory.Delete(path, recursive: true);
    }

    /// <summary>
    /// Moves every checkpoint directory of <paramref name="runDirectory"/> into <paramref name="directory"/> (the run
    /// being assembled), so that they survive the run directory's replacement.
    /// </summary>
    public static void MoveAll(string runDirectory, string directory)
    {
        foreach (var (_, path) in List(runDirectory))
        {
            string target = Path.Combine(directory, Path.GetFileName(path));
            if (!Directory.Exists(target)) Directory.Move(path, target);
        }
    }

    private void Write(string directory)
    {
        var tensors = new Dictionary<string, Tensor> { ["rng_state"] = RandomState };
        var steps = new JsonObject();
        foreach (var (key, state) in Optimizer)
        {
            tensors["optimizer.exp_avg." + key] = state.ExpAvg;
            tensors["optimizer.exp_avg_sq." + key] = state.ExpAvgSq;
            steps[key] = state.Step;
        }
        if (BestWeights is not null)
            foreach (var (key, weight) in BestWeights) tensors["best." + key] = weight;
        if (Adapters is not null)
            foreach (var (key, tensor) in Adapters) tensors["lora." + key] = tensor;
        SafeTensors.Save(Path.Combine(directory, TensorsFile), tensors);

        var json = new JsonObject
        {
            ["format_version"] = FormatVersion,
            ["epoch"] = Epoch, ["batch"] = Batch, ["step"] = Step, ["samples"] = Samples,
            ["loss_sum"] = LossSum, ["loss_count"] = LossCount, ["train_seconds"] = TrainSeconds, ["elapsed_seconds"] = ElapsedSeconds,
            ["evaluations_without_improvement"] = EvaluationsWithoutImprovement,
            ["best_index"] = BestIndex,
            ["fixed"] = new JsonObject(Fixed.Select(f => KeyValuePair.Create(f.Key, (JsonNode?)f.Value))),
            ["optimizer_steps"] = steps,
            ["evaluations"] = new JsonArray(Evaluations.Select(e => (JsonNode)new JsonObject
            {
                ["epoch"] = e.Epoch, ["step"] = e.Step, ["train_loss"] = e.TrainLoss, ["is_best"] = e.IsBest,
                ["metrics"] = new JsonObject(e.Metrics.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)m.Value))),
            }).ToArray()),
        };
        // A metric can be NaN (a correlation of constant predictions): written as the string "NaN".
        File.WriteAllText(Path.Combine(directory, StateFile),
            json.ToJsonString(new System.Text.Json.JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
    }

    /// <summary>Reads the trainer state of a checkpoint directory; a missing or malformed part is an error naming the file and key.</summary>
    public static TrainingCheckpoint Read(string directory)
    {
        string statePath = Path.Combine(directory, StateFile);
        string tensorsPath = Path.Combine(directory, TensorsFile);
        if (!File.Exists(statePath)) throw new SharpTuneException($"{statePath}: not found; {directory} is not a training checkpoint.");
        JsonObject json = StrictJson.ReadObject(statePath);
        int format = Int(json, statePath, "format_version");
        if (format != FormatVersion) throw new SharpTuneException($"{statePath}: format_version {format} is not supported (expected {FormatVersion}).");
        var tensors = SafeTensors.Load(tensorsPath);
        try
        {
            Tensor Take(string key) => tensors.Remove(key, out Tensor? t) ? t
                : throw new SharpTuneException($"{tensorsPath}: tensor '{key}' is missing.");
            var optimizer = new Dictionary<string, (long, Tensor, Tensor)>(StringComparer.Ordinal);
            foreach (var (key, node) in Object(json, statePath, "optimizer_steps"))
                optimizer[key] = (Long(node, statePath, "optimizer_steps." + key), Take("optimizer.exp_avg." + key), Take("optimizer.exp_avg_sq." + key));
            Dictionary<string, Tensor> Prefixed(string prefix) => tensors.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList()
                .ToDictionary(k => k[prefix.Length..], Take, StringComparer.Ordinal);
            var best = Prefixed("best.");
            var adapters = Prefixed("lora.");
            Tensor random = Take("rng_state");
            if (tensors.Count > 0) throw new SharpTuneException($"{tensorsPath}: unexpected tensor '{tensors.Keys.First()}'.");
            var evaluations = new List<EvaluationEvent>();
            int i = 0;
            foreach (JsonNode? node in json["evaluations"] as JsonArray ?? throw Missing(statePath, "evaluations"))
            {
                string where = $"evaluations[{i++}]";
                if (node is not JsonObject e) throw Missing(statePath, where);
                var metrics = (e["metrics"] as JsonObject ?? throw Missing(statePath, where + ".metrics")).ToDictionary(m => m.Key, m => Double(m.Value, statePath, $"{where}.metrics.{m.Key}"));
                evaluations.Add(new EvaluationEvent(Int(e, statePath, where + ".epoch", "epoch"), Int(e, statePath, where + ".step", "step"),
                    Double(e["train_loss"], statePath, where + ".train_loss"), metrics, e["is_best"]?.GetValue<bool>() ?? false));
            }
            int? bestIndex = json["best_index"] is null ? null : Int(json, statePath, "best_index");
            if (bestIndex is { } b && (b < 0 || b >= evaluations.Count)) throw new SharpTuneException($"{statePath}: best_index {b} is not an evaluation index.");
            return new TrainingCheckpoint
            {
                Epoch = Int(json, statePath, "epoch"), Batch = Int(json, statePath, "batch"), Step = Int(json, statePath, "step"),
                Samples = Long(json["samples"], statePath, "samples"),
                LossSum = Double(json["loss_sum"], statePath, "loss_sum"), LossCount = Int(json, statePath, "loss_count"),
                EvaluationsWithoutImprovement = Int(json, statePath, "evaluations_without_improvement"),
                Evaluations = evaluations, BestIndex = bestIndex,
                Fixed = Object(json, statePath, "fixed").ToDictionary(f => f.Key, f => f.Value?.ToString() ?? ""),
                Optimizer = optimizer, RandomState = random, BestWeights = best.Count > 0 ? best : null,
                TrainSeconds = json["train_seconds"] is null ? 0 : Double(json["train_seconds"], statePath, "train_seconds"),
                ElapsedSeconds = json["elapsed_seconds"] is null ? null : Double(json["elapsed_seconds"], statePath, "elapsed_seconds"),
                Adapters = adapters.Count > 0 ? adapters : null,
            };
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Refuses to continue under settings that would change the data order or the schedule, naming the first that differs
    /// (a setting the checkpoint does not record — written before it was — is not checked).
    /// </summary>
    public void CheckFixed(IReadOnlyDictionary<string, string> now, string directory)
    {
        foreach (var (name, value) in Fixed)
            if (now.TryGetValue(name, out string? current) && current != value)
                throw new SharpTuneException($"{Path.Combine(directory, StateFile)}: the checkpoint was trained with {name} {value}, this run has {current}; " +
                    $"resume with the same {name}.");
    }

    /// <summary>
    /// Copies the saved AdamW state into <paramref name="states"/> (the optimizer's, by parameter key) and sets the
    /// random-number generator to its state at the checkpoint.
    /// </summary>
    internal void Restore(IReadOnlyDictionary<string, AdamState> states, string directory)
    {
        torch.set_rng_state(RandomState);
        using var noGrad = no_grad();
        foreach (var (key, state) in states)
        {
            if (!Optimizer.TryGetValue(key, out var saved))
                throw new SharpTuneException($"{Path.Combine(directory, TensorsFile)}: no optimizer state for trainable tensor '{key}' (was the strategy the same?).");
            state.Step = saved.Step;
            state.ExpAvg.copy_(saved.ExpAvg);
            state.ExpAvgSq.copy_(saved.ExpAvgSq);
        }
    }

    /// <summary>
    /// Puts a LoRA run's wrapped layers back as they were at the checkpoint: the base weights unmerged and the adapters
    /// (<paramref name="model"/> holds the checkpoint's merged weights with fresh adapters injected). A model with
    /// adapters needs them all in the checkpoint, and one without needs none; errors name the file and the key.
    /// </summary>
    public void RestoreAdapters(Models.SequenceClassifier model, string directory)
    {
        string source = Path.Combine(directory, TensorsFile);
        var layers = Lora.LoraInjector.AdapterState(model);
        try
        {
            if (layers.Count == 0 && Adapters is null) return;
            if (Adapters is null)
                throw new SharpTuneException($"{source}: holds no LoRA layers (lora.*), but this run's model has adapters (was the strategy the same?).");
            StateDict.LoadStrict(model, Adapters, source, ignore: model.state_dict().Keys.Except(layers.Keys).ToList());
        }
        finally
        {
            foreach (var t in layers.Values) t.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        RandomState.Dispose();
        foreach (var state in Optimizer.Values)
        {
            state.ExpAvg.Dispose();
            state.ExpAvgSq.Dispose();
        }
        if (BestWeights is not null) foreach (var t in BestWeights.Values) t.Dispose();
        if (Adapters is not null) foreach (var t in Adapters.Values) t.Dispose();
    }

    private static SharpTuneException Missing(string path, string key) => new($"{path}: '{key}' is missing or not of the right kind.");

    private static JsonObject Object(JsonObject json, string path, string key) => json[key] as JsonObject ?? throw Missing(path, key);

    private static int Int(JsonObject json, string path, string shown, string? key = null) =>
        json[key ?? shown] is JsonValue v && v.TryGetValue(out int i) ? i : throw Missing(path, shown);

    private static long Long(JsonNode? node, string path, string key) =>
        node is JsonValue v && v.TryGetValue(out long l) ? l : throw Missing(path, key);

    private static double Double(JsonNode? node, string path, string key) =>
        node is JsonValue v && (v.TryGetValue(out double d) ||
            v.TryGetValue(out string? s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) ? d : throw Missing(path, key);
}
