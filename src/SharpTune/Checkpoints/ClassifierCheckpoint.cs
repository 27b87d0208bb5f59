using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Lora;
using SharpTune.Models;
using SharpTune.Training;

namespace SharpTune.Checkpoints;

/// <summary>What sharptune.json records beside the weights: how to rebuild the head (never code) and the task.</summary>
/// <param name="HeadType">Head type name, as registered in <see cref="HeadRegistry"/>.</param>
/// <param name="HeadOptions">The head's own options (dropout…).</param>
/// <param name="Outputs">Logits per example.</param>
/// <param name="Task">The task.</param>
/// <param name="MaxLength">Token limit the model was trained with.</param>
/// <param name="Strategy">The strategy it was trained with, or null.</param>
public sealed record ClassifierSettings(string HeadType, JsonObject HeadOptions, int Outputs, TaskType Task, int MaxLength, string? Strategy);

/// <summary>
/// Saves a fine-tuned classifier as Hugging Face's <c>save_pretrained</c> would: config.json with
/// architectures, id2label, label2id, num_labels and problem_type; model.safetensors with the encoder's keys
/// (<c>bert.*</c>, …) and the head's (LoRA adapters merged); the tokenizer files; and sharptune.json naming the head.
/// A head that is its architecture's HF head (<see cref="SequenceClassifier.HuggingFaceClass"/>, e.g.
/// <see cref="PooledHead"/> on BERT) is saved as that class with HF's keys, and Python's <c>transformers</c> loads the
/// run as is. Any other head is saved under <c>sharptune_head.*</c>, which no HF class reads, and config.json names
/// the bare encoder (<c>BertModel</c>): <c>AutoModel</c> loads the encoder and reports the head's keys as unused,
/// <c>AutoModelForSequenceClassification</c> says that its classifier is newly initialised.
/// </summary>
public static class ClassifierCheckpoint
{
    /// <summary>File name of the SharpTune settings.</summary>
    public const string SettingsFile = "sharptune.json";

    /// <summary>
    /// sharptune.json's <c>format_version</c>: 2 puts a head without HF class under <c>sharptune_head.*</c>; format 1
    /// saved it under HF's names (<c>classifier.*</c>), and such runs still load.
    /// </summary>
    public const int FormatVersion = 2;

    /// <summary>
    /// Saves the checkpoint as the directory <paramref name="directory"/>, as a whole (see <see cref="StagedDirectory"/>):
    /// a previous directory there is replaced only once the new one is complete. LoRA adapters are saved merged into
    /// their base weights; the model keeps them.
    /// </summary>
    public static void Save(string directory, SequenceClassifier model, Tokenization.Tokenizer tokenizer, LabelSet labels, ClassifierSettings settings) =>
        StagedDirectory.Write(directory, staging => Write(staging, model, tokenizer, labels, settings));

    /// <summary>
    /// Writes the checkpoint's files into <paramref name="directory"/>, a directory being assembled (a run directory's
    /// <see cref="StagedDirectory.Path"/>, with other files of the run beside them); model files go through
    /// <see cref="HfModelDirectory.Write"/>. LoRA adapters are saved merged into their base weights; the model keeps
    /// them (a checkpoint mid-run must not change what trains).
    /// </summary>
    public static void Write(string directory, SequenceClassifier model, Tokenization.Tokenizer tokenizer, LabelSet labels, ClassifierSettings settings)
    {
        Directory.CreateDirectory(directory);

        JsonObject config = model.Encoder.Config.ToJson();
        Architecture architecture = model.Encoder.Architecture;
        // Honest: the HF class that reads every key but the head's when the head has no HF class.
        config["architectures"] = new JsonArray(model.HuggingFaceClass ?? architecture.BaseClass);
        config["id2label"] = JsonSerializer.SerializeToNode(labels.ToId2Label());
        config["label2id"] = JsonSerializer.SerializeToNode(labels.ToLabel2Id());
        config["num_labels"] = labels.Count;
        if (settings.Task.ProblemType is { } problemType) config["problem_type"] = problemType;
        else config.Remove("problem_type");
        config.Remove("sharptune_source");
        // An HF head whose dropout differs from the config's: the config says so, for training on in Python.
        if (architecture.HeadDropoutEntry(model.Encoder.Config, model.Head) is { } dropout) config[dropout.Key] = dropout.Dropout;
        var tensors = LoraInjector.MergedStateDict(model);
        // Exactly the HF class's keys: every supported XFor…Classification but BERT's sequence head builds its encoder
        // without a pooler (add_pooling_layer=False), and Python would report a saved one as unused. A head that does
        // not read the pooler never trains it.
        if (model.HuggingFaceClass is not null && model.Head.Input != HeadInput.Pooled && architecture.Groups.Pooler is { } pooler)
            foreach (string key in tensors.Keys.Where(k => k.StartsWith(model.EncoderPrefix + pooler, StringComparison.Ordinal)).ToList())
            {
                tensors[key].Dispose();
                tensors.Remove(key);
            }
        try
        {
            HfModelDirectory.Write(directory, config, tensors);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        tokenizer.Save(directory);

        WriteSettings(directory, model, settings);
    }

    /// <summary>
    /// Writes sharptune.json into <paramref name="directory"/>: how to rebuild the head, the task, the token limit and
    /// the strategy; with <paramref name="labels"/> also their <c>id2label</c> (for a directory without config.json, such
    /// as a PEFT adapter's).
    /// </summary>
    public static void WriteSettings(string directory, SequenceClassifier model, ClassifierSettings settings, LabelSet? labels = null)
    {
        var json = new JsonObject
        {
            ["format_version"] = FormatVersion,
            ["head"] = new JsonObject
            {
                ["type"] = model.Head.GetType().Name,
                ["input"] = model.Head.Input.ToString(),
                ["outputs"] = settings.Outputs,
                ["options"] = settings.HeadOptions.DeepClone(),
                // Where its weights are: HF's names of hf_class, or under key_prefix (for Python to rebuild it).
                ["hf_class"] = model.HuggingFaceClass,
                ["key_prefix"] = model.HuggingFaceClass is null ? SequenceClassifier.CustomHeadPrefix : null,
            },
            ["task"] = settings.Task.Name,
            ["max_length"] = settings.MaxLength,
            ["strategy"] = settings.Strategy,
        };
        if (labels is not null) json["id2label"] = JsonSerializer.SerializeToNode(labels.ToId2Label());
        File.WriteAllText(Path.Combine(directory, SettingsFile), json.ToJsonString(EncoderConfig.JsonOptions));
    }

    /// <summary>True when <see cref="HuggingFaceClass"/> names a class.</summary>
    public static bool IsHuggingFaceHead(SequenceClassifier model) => model.HuggingFaceClass is not null;

    /// <summary>The HF task class the model is saved as, or null (see <see cref="SequenceClassifier.HuggingFaceClass"/>).</summary>
    public static string? HuggingFaceClass(SequenceClassifier model) => model.HuggingFaceClass;

    /// <summary>
    /// Loads a checkpoint written by <see cref="Save"/>, or a task checkpoint saved by Python's <c>transformers</c>
    /// (no sharptune.json; <c>architectures</c> names the XForSequenceClassification or XForTokenClassification class
    /// of a supported architecture, whose head is rebuilt with num_labels outputs and labels from id2label).
    /// </summary>
    public static (SequenceClassifier Model, LabelSet Labels, ClassifierSettings Settings) Load(string directory)
    {
        HfModelDirectory hf = HfModelDirectory.Open(directory);
        Architecture architecture = Architectures.Of(hf.Config);
        JsonObject config = StrictJson.ReadObject(hf.ConfigPath);
        LabelSet labels = ReadLabels(config, hf.ConfigPath);
        var weights = hf.LoadWeights();
        try
        {
            var (settings, format) = ReadSettings(directory, config, labels, hf, architecture);
            Encoder encoder = architecture.Create(hf.Config, architecture.HasPoolerIn(weights.Keys, architecture.KeyPrefix));
            Head head = HeadRegistry.Create(settings.HeadType, hf.Config.HiddenSize, settings.Outputs, settings.HeadOptions);
            var model = new SequenceClassifier(encoder, head);
            try
            {
                var ignored = architecture.IgnoredKeys.Select(k => architecture.KeyPrefix + k).ToList();
                KeyMap keyMap = format < FormatVersion && model.HuggingFaceClass is null
                    ? KeyMap.SharpTuneFormat1(architecture, head)
                    : new KeyMap(architecture.ModelType, [], architecture.KeyRenames);
                StateDict.LoadStrict(model, weights, hf.WeightsPath, keyMap, ignored);
            }
            catch
            {
                model.Dispose();
                throw;
            }
            model.eval();
            return (model, labels, settings);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Loads a PEFT LoRA adapter (<see cref="PeftAdapter"/>) onto its base model <paramref name="baseModel"/> (a Hugging
    /// Face directory; null: the packaged MiniLM): the encoder and tokenizer come from the base, the adapters and the
    /// head from the adapter. The head is rebuilt from the adapter's sharptune.json when SharpTune wrote it (with its
    /// labels); an adapter saved by Python's PEFT has the architecture's HF head (sequence or token classification, as its
    /// task_type says) with as many outputs as its saved classifier, labelled by the base config's id2label when that has
    /// as many, else LABEL_0, LABEL_1, … as transformers names them.
    /// </summary>
    public static (SequenceClassifier Model, Tokenization.Tokenizer Tokenizer, LabelSet Labels, ClassifierSettings Settings) LoadWithAdapter(string? baseModel, string adapterDirectory)
    {
        PeftAdapterConfig adapter = PeftAdapter.ReadConfig(adapterDirectory); // a bad adapter is reported before the base loads
        var encoder = PretrainedEncoder.Load(baseModel);
        try
        {
            Architecture architecture = encoder.Model.Architecture;
            string settingsPath = Path.Combine(adapterDirectory, SettingsFile);
            ClassifierSettings settings;
            LabelSet labels;
            if (File.Exists(settingsPath))
            {
                settings = ReadSettingsFile(settingsPath).Settings;
                labels = ReadLabels(StrictJson.ReadObject(settingsPath), settingsPath);
                if (settings.Task.PerToken != adapter.PerToken)
                    throw new SharpTuneException($"{settingsPath}: task {settings.Task.Name} does not match {PeftAdapter.ConfigFile}'s task_type " +
                        $"{(adapter.PerToken ? PeftAdapter.TokenTask : PeftAdapter.SequenceTask)}.");
            }
            else
            {
                int outputs = PeftAdapter.HeadOutputs(adapterDirectory, architecture);
                JsonObject baseConfig = StrictJson.ReadObject(encoder.Directory.ConfigPath);
                labels = baseConfig["id2label"] is JsonObject names && names.Count == outputs
                    ? ReadLabels(baseConfig, encoder.Directory.ConfigPath)
                    : LabelSet.FromNames(Enumerable.Range(0, outputs).Select(i => $"LABEL_{i}"));
                using Head reference = adapter.PerToken ? architecture.TokenHead(encoder.Model.Config, outputs) : architecture.SequenceHead(encoder.Model.Config, outputs);
                settings = new ClassifierSettings(reference.GetType().Name, reference.Options(), outputs, adapter.PerToken ? TaskType.Token : TaskType.SingleLabel,
                    Math.Min(512, encoder.Model.Config.MaxInputLength), null);
            }
            Head head = HeadRegistry.Create(settings.HeadType, encoder.Model.Config.HiddenSize, settings.Outputs, settings.HeadOptions);
            var model = new SequenceClassifier(encoder.Model, head);
            PeftAdapter.Apply(adapterDirectory, model);
            model.eval();
            return (model, encoder.Tokenizer, labels, settings with { Strategy = new Strategies.LoraStrategy(adapter.Options).Name });
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    // The settings and sharptune.json's format_version (a Python-saved checkpoint has HF's keys: the current format).
    private static (ClassifierSettings Settings, int Format) ReadSettings(string directory, JsonObject config, LabelSet labels, HfModelDirectory hf, Architecture architecture)
    {
        string path = Path.Combine(directory, SettingsFile);
        if (!File.Exists(path))
        {
            string? className = (config["architectures"] as JsonArray)?.FirstOrDefault()?.GetValue<string>();
            bool token = className == architecture.TokenClassificationClass;
            if (className != architecture.SequenceClassificationClass && !token)
                throw new SharpTuneException($"{directory}: no {SettingsFile} and config.json architectures is '{className ?? "missing"}'; " +
                    $"expected a SharpTune run directory, a {architecture.SequenceClassificationClass} or a {architecture.TokenClassificationClass} checkpoint. " +
                    "A bare encoder is a --model for train or embed, not for evaluate or predict.");
            TaskType task = token ? TaskType.Token : TaskType.FromProblemType(config["problem_type"]?.GetValue<string>(), hf.ConfigPath);
            int outputs = task.Outputs(labels.Count);
            using Head head = token ? architecture.TokenHead(hf.Config, outputs) : architecture.SequenceHead(hf.Config, outputs);
            return (new ClassifierSettings(head.GetType().Name, head.Options(), outputs, task, Math.Min(512, hf.Config.MaxInputLength), null), FormatVersion);
        }
        return ReadSettingsFile(path);
    }

    /// <summary>
    /// Reads a sharptune.json written by <see cref="WriteSettings"/>: the settings and the file's format_version; errors
    /// name the file.
    /// </summary>
    public static (ClassifierSettings Settings, int Format) ReadSettingsFile(string path)
    {
        JsonObject json = StrictJson.ReadObject(path);
        try
        {
            var head = json["head"]!.AsObject();
            int format = json["format_version"]?.GetValue<int>() ?? 1;
            if (format > FormatVersion)
                throw new SharpTuneException($"{path}: format_version {format} is newer than this SharpTune reads ({FormatVersion}); update SharpTune.");
            return (new ClassifierSettings(
                head["type"]!.GetValue<string>(),
                head["options"]?.AsObject().DeepClone().AsObject() ?? new JsonObject(),
                head["outputs"]!.GetValue<int>(),
                json["task"] is { } task ? TaskType.Parse(task.GetValue<string>(), $"{path}: task") : TaskType.FromProblemType(json["problem_type"]?.GetValue<string>(), path),
                json["max_length"]?.GetValue<int>() ?? 512,
                json["strategy"]?.GetValue<string>()), format);
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new SharpTuneException($"{path}: malformed settings (needs head.type, head.outputs, task): {e.Message}", e);
        }
    }

    private static LabelSet ReadLabels(JsonObject config, string configPath)
    {
        try
        {
            var id2label = config["id2label"]?.Deserialize<Dictionary<string, string>>()
                ?? throw new SharpTuneException($"{configPath}: id2label is missing; a classifier checkpoint names its labels.");
            var label2id = config["label2id"]?.Deserialize<Dictionary<string, int>>();
            return LabelSet.FromHuggingFace(id2label, label2id, configPath);
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{configPath}: id2label/label2id are malformed: {e.Message}", e);
        }
    }
}
