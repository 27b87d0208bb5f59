using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Hub;
using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Lora;

/// <summary>What adapter_config.json says, as far as SharpTune uses it.</summary>
/// <param name="Options">r, lora_alpha, lora_dropout and target_modules.</param>
/// <param name="ModulesToSave">The modules saved whole beside the adapters (the head).</param>
/// <param name="BaseModelNameOrPath">The base model the adapter was trained on, as written (a hub id or a path), or null; a
/// hub id with the config's <c>revision</c>, when it names one, as <c>org/name@revision</c>.</param>
/// <param name="PerToken">True for task_type TOKEN_CLS (a token-classification head), false for SEQ_CLS.</param>
public sealed record PeftAdapterConfig(LoraOptions Options, IReadOnlyList<string> ModulesToSave, string? BaseModelNameOrPath, bool PerToken = false);

/// <summary>
/// A LoRA model as a PEFT adapter directory — what <c>PeftModel.save_pretrained</c> writes and
/// <c>PeftModel.from_pretrained(base, dir)</c> reads: <c>adapter_config.json</c> (peft_type LORA, task_type SEQ_CLS — or
/// TOKEN_CLS for a per-token head, whose PeftModelForTokenClassification saves the head the same way —
/// r, lora_alpha, lora_dropout, target_modules, bias "none", modules_to_save = the head) and
/// <c>adapter_model.safetensors</c> with PEFT's keys: <c>base_model.model.</c> + the HF key path of each wrapped layer
/// + <c>.lora_A.weight</c> / <c>.lora_B.weight</c> (PEFT drops the adapter name <c>default</c> on save), and the head's
/// tensors as <c>base_model.model.classifier.weight</c> … (a modules_to_save copy is saved under the module's own key).
/// Since LoRA layers here are named as PEFT names them, the keys are the model's own with the prefix.
/// </summary>
public static class PeftAdapter
{
    /// <summary>File names PEFT uses.</summary>
    public const string ConfigFile = "adapter_config.json", WeightsFile = "adapter_model.safetensors";

    /// <summary>
    /// The subdirectory of a lora run that holds its PEFT adapter. Not the run's root: transformers, finding an
    /// adapter_config.json there, would load the base model and the adapter instead of the merged weights.
    /// </summary>
    public const string RunSubdirectory = "adapter";

    /// <summary>The prefix of every key: PeftModel.base_model (the LoraModel) → its .model (the task model).</summary>
    public const string KeyPrefix = "base_model.model.";

    /// <summary>PEFT's task types of a sequence- and a token-classification adapter.</summary>
    public const string SequenceTask = "SEQ_CLS", TokenTask = "TOKEN_CLS";

    /// <summary>True when <paramref name="directory"/> holds an adapter_config.json.</summary>
    public static bool IsAdapterDirectory(string directory) => File.Exists(Path.Combine(directory, ConfigFile));

    /// <summary>
    /// Writes the model's adapters and head into <paramref name="directory"/> (a directory being assembled, e.g. a
    /// run's <c>adapter/</c> inside its <see cref="StagedDirectory"/>); call it before the adapters are merged.
    /// <paramref name="baseModelNameOrPath"/> goes into <c>base_model_name_or_path</c>; a hub id with a revision
    /// (<c>org/name@commit</c>) is written as PEFT writes it, <c>org/name</c> there and the commit in <c>revision</c>.
    /// </summary>
    public static void Write(string directory, SequenceClassifier model, string? baseModelNameOrPath)
    {
        var adapters = model.named_modules().Where(m => m.module is LoraLinear).Select(m => (LoraLinear)m.module).ToList();
        if (adapters.Count == 0)
            throw new SharpTuneException("The model has no LoRA adapters: only a model trained with the lora strategy (before its adapters are merged) saves a PEFT adapter.");
        LoraOptions options = adapters[0].Options;
        if (adapters.Any(a => !SameOptions(a.Options, options)))
            throw new SharpTuneException("The model's LoRA adapters differ in r, alpha or dropout; a PEFT adapter has one setting for all.");
        IReadOnlyList<string> headModules = HeadModules(model);

        Directory.CreateDirectory(directory);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (key, tensor) in model.state_dict())
                if (IsAdapterKey(key) || headModules.Any(h => key.StartsWith(h + ".", StringComparison.Ordinal)))
                    tensors.Add(KeyPrefix + key, tensor.detach());
            SafeTensors.Save(Path.Combine(directory, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }

        HubModelId? hub = baseModelNameOrPath is not null && baseModelNameOrPath.Contains('@', StringComparison.Ordinal) &&
            HubModelId.TryParse(baseModelNameOrPath, out HubModelId id) ? id : null;
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = model.Head.PerToken ? TokenTask : SequenceTask,
            ["base_model_name_or_path"] = hub?.Repo ?? baseModelNameOrPath,
            ["revision"] = hub?.Revision,
            ["inference_mode"] = true,
            ["r"] = options.Rank,
            ["lora_alpha"] = options.Alpha,
            ["lora_dropout"] = options.Dropout,
            ["target_modules"] = new JsonArray(options.TargetModules!.Select(t => (JsonNode)JsonValue.Create(t)).ToArray()),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["modules_to_save"] = new JsonArray(headModules.Select(h => (JsonNode)JsonValue.Create(h)).ToArray()),
            ["use_rslora"] = false,
            ["use_dora"] = false,
            ["init_lora_weights"] = true,
            ["layers_to_transform"] = null,
            ["layers_pattern"] = null,
            ["rank_pattern"] = new JsonObject(),
            ["alpha_pattern"] = new JsonObject(),
        };
        File.WriteAllText(Path.Combine(directory, ConfigFile), config.ToJsonString(EncoderConfig.JsonOptions));
    }

    /// <summary>
    /// Reads adapter_config.json. What SharpTune cannot reproduce exactly (another peft_type or task, bias other than
    /// "none", fan_in_fan_out, DoRA, rsLoRA, per-layer ranks, a regular-expression target_modules) is an error naming the
    /// file and the field.
    /// </summary>
    public static PeftAdapterConfig ReadConfig(string directory)
    {
        string path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: file not found; a PEFT adapter directory has {ConfigFile} and {WeightsFile}.");
        JsonObject json = StrictJson.ReadObject(path);
        T Field<T>(string name, T fallback, bool required = false)
        {
            JsonNode? node = json[name];
            if (node is null)
                return required ? throw new SharpTuneException($"{path}: {name} is missing.") : fallback;
            try
            {
                return node.GetValue<T>();
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new SharpTuneException($"{path}: {name} has the wrong type: {node.ToJsonString()}.", e);
            }
        }
        void Require<T>(string name, T expected, T fallback, string why)
        {
            T value = Field(name, fallback);
            if (!EqualityComparer<T>.Default.Equals(value, expected))
                throw new SharpTuneException($"{path}: {name} is {json[name]?.ToJsonString() ?? "missing"}; SharpTune reads only {System.Text.Json.JsonSerializer.Serialize(expected)} ({why}).");
        }
        Require("peft_type", "LORA", "", "LoRA adapters");
        string task = Field("task_type", SequenceTask);
        if (task is not (SequenceTask or TokenTask))
            throw new SharpTuneException($"{path}: task_type is {json["task_type"]!.ToJsonString()}; SharpTune reads only \"{SequenceTask}\" or \"{TokenTask}\" (sequence or token classification).");
        Require("bias", "none", "none", "biases stay as in the base model");
        Require("fan_in_fan_out", false, false, "weights stored [out, in], as nn.Linear");
        Require("use_dora", false, false, "plain LoRA");
        Require("use_rslora", false, false, "scaling alpha / r");
        foreach (string name in new[] { "rank_pattern", "alpha_pattern" })
            if (json[name] is JsonObject pattern && pattern.Count > 0)
                throw new SharpTuneException($"{path}: {name} is not empty; SharpTune uses one r and alpha for every layer.");
        if (json["layers_to_transform"] is not null)
            throw new SharpTuneException($"{path}: layers_to_transform is set; SharpTune puts adapters on every matching layer.");

        IReadOnlyList<string> Names(string name) => json[name] switch
        {
            null => [],
            JsonArray array => array.Select(n => n?.GetValue<string>() ?? throw new SharpTuneException($"{path}: {name} holds null.")).ToList(),
            JsonValue value when value.TryGetValue(out string? text) && name == "target_modules"
                => throw new SharpTuneException($"{path}: target_modules is the regular expression '{text}'; SharpTune reads a list of module names."),
            var other => throw new SharpTuneException($"{path}: {name} must be a list of module names, got {other.ToJsonString()}."),
        };
        var options = new LoraOptions(Field("r", 0, required: true), Field("lora_alpha", 8.0), Field("lora_dropout", 0.0), Names("target_modules"));
        try
        {
            options.Validate();
        }
        catch (SharpTuneException e)
        {
            throw new SharpTuneException($"{path}: {e.Message}", e);
        }
        if (options.TargetModules!.Count == 0) throw new SharpTuneException($"{path}: target_modules is missing or empty.");
        string? baseModel = Field<string?>("base_model_name_or_path", null), revision = Field<string?>("revision", null);
        if (baseModel is not null && revision is not null && HubModelId.TryParse($"{baseModel}@{revision}", out HubModelId hub)) baseModel = hub.ToString();
        return new PeftAdapterConfig(options, Names("modules_to_save"), baseModel, task == TokenTask);
    }

    /// <summary>
    /// Puts the adapter of <paramref name="directory"/> on <paramref name="model"/> (a base encoder with a head of the
    /// adapter's shape): wraps its target layers as the config says and loads the adapters and the head. Every LoRA
    /// tensor and head tensor of the model must be in the file and nothing else may be; errors name the file and keys.
    /// </summary>
    public static PeftAdapterConfig Apply(string directory, SequenceClassifier model)
    {
        PeftAdapterConfig config = ReadConfig(directory);
        LoraInjector.Inject(model.Encoder, config.Options);
        string weights = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weights)) throw new SharpTuneException($"{weights}: file not found; a PEFT adapter directory has {ConfigFile} and {WeightsFile}.");
        var tensors = SafeTensors.Load(weights);
        try
        {
            IReadOnlyList<string> headModules = HeadModules(model);
            // The base model's own tensors are not in an adapter file: they are neither missing nor expected.
            var baseKeys = model.state_dict().Keys
                .Where(k => !IsAdapterKey(k) && !headModules.Any(h => k.StartsWith(h + ".", StringComparison.Ordinal))).ToList();
            StateDict.LoadStrict(model, tensors, weights, new KeyMap("peft", [KeyPrefix], []), baseKeys);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        return config;
    }

    /// <summary>The number of logits of the head saved in an adapter file: rows of its last weight matrix (HF heads end in one Linear).</summary>
    public static int HeadOutputs(string directory, Architecture architecture)
    {
        string weights = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weights)) throw new SharpTuneException($"{weights}: file not found; a PEFT adapter directory has {ConfigFile} and {WeightsFile}.");
        var header = SafeTensors.ReadHeader(weights);
        string[] candidates = [KeyPrefix + "classifier.out_proj.weight", KeyPrefix + "classifier.weight"];
        var info = candidates.Select(c => header.Tensors.FirstOrDefault(t => t.Name == c)).FirstOrDefault(t => t is not null)
            ?? throw new SharpTuneException($"{weights}: holds no {string.Join(" or ", candidates)}; a {architecture.SequenceClassificationClass} adapter saves its classifier (modules_to_save).");
        return (int)info.Shape[0];
    }

    private static bool IsAdapterKey(string key) => key.Contains(".lora_A.", StringComparison.Ordinal) || key.Contains(".lora_B.", StringComparison.Ordinal);

    // The task model's top-level modules besides the encoder that hold tensors: what PEFT's modules_to_save must copy to
    // keep the head (a dropout has none; named there, older PEFT would also wrap every "…dropout" of the encoder).
    private static List<string> HeadModules(SequenceClassifier model) =>
        model.named_children().Where(c => c.name != model.Encoder.Architecture.Prefix && c.module.parameters().Any()).Select(c => c.name).ToList();

    private static bool SameOptions(LoraOptions a, LoraOptions b) =>
        a.Rank == b.Rank && a.Alpha == b.Alpha && a.Dropout == b.Dropout && (a.TargetModules ?? []).SequenceEqual(b.TargetModules ?? []);
}
