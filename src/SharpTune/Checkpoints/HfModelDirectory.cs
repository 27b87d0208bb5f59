using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Checkpoints;

/// <summary>
/// A Hugging Face model directory (what <c>save_pretrained</c> writes): <c>config.json</c>, the weights as
/// <c>model.safetensors</c> or a sharded <c>model.safetensors.index.json</c> (or, from older transformers,
/// <c>pytorch_model.bin</c> or <c>pytorch_model.bin.index.json</c>), and tokenizer files.
/// <see cref="Open"/> checks the layout; <see cref="LoadWeights"/> reads the tensors.
/// </summary>
/// <param name="Path">The directory.</param>
/// <param name="Config">The validated config.json.</param>
/// <param name="ConfigPath">Path of config.json.</param>
/// <param name="WeightsPath">Path of model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json.</param>
/// <param name="VocabPath">Path of vocab.txt (WordPiece vocabulary), or null when absent.</param>
/// <param name="TokenizerJsonPath">Path of tokenizer.json (fast-tokenizer definition), or null when absent.</param>
/// <param name="TokenizerConfigPath">Path of tokenizer_config.json, or null when absent.</param>
public sealed record HfModelDirectory(string Path, EncoderConfig Config, string ConfigPath, string WeightsPath,
    string? VocabPath, string? TokenizerJsonPath, string? TokenizerConfigPath)
{
    /// <summary>Name of the single-file weights.</summary>
    public const string WeightsFileName = "model.safetensors";

    /// <summary>True when the weights are sharded (<see cref="WeightsPath"/> is the index).</summary>
    public bool IsSharded => WeightsPath.EndsWith(".index.json", StringComparison.Ordinal);

    /// <summary>
    /// Checks a model directory: it exists, has a valid config.json, and weights: safetensors (a single file or a
    /// sharded index) when present, else <c>pytorch_model.bin</c> (or its sharded index). Errors name the path.
    /// </summary>
    public static HfModelDirectory Open(string path)
    {
        if (!Directory.Exists(path))
            throw new SharpTuneException(File.Exists(path)
                ? $"{path}: is a file; expected a model directory (config.json + model.safetensors)."
                : $"{path}: model directory not found.");
        string configPath = System.IO.Path.Combine(path, "config.json");
        if (!File.Exists(configPath))
            throw new SharpTuneException($"{configPath}: file not found; a model directory needs config.json.");
        var config = Architectures.LoadConfig(configPath);

        // safetensors first, as transformers prefers them; pytorch_model.bin is read without running code (PickleCheckpoint).
        string[] candidates = [WeightsFileName, SafeTensorsIndex.FileName, PickleCheckpoint.FileName, PickleCheckpoint.IndexFileName];
        string weights = candidates.Select(name => System.IO.Path.Combine(path, name)).FirstOrDefault(File.Exists)
            ?? throw new SharpTuneException(new[] { "tf_model.h5", "flax_model.msgpack" }.FirstOrDefault(n => File.Exists(System.IO.Path.Combine(path, n))) is { } other
                ? $"{path}: has {other} but no PyTorch weights; SharpTune reads {string.Join(", ", candidates)}. Convert it, e.g. in Python: AutoModel.from_pretrained(dir, from_tf=True).save_pretrained(dir)."
                : $"{path}: no weights found; expected {string.Join(", ", candidates)}.");

        string? Optional(string name)
        {
            string file = System.IO.Path.Combine(path, name);
            return File.Exists(file) ? file : null;
        }
        return new HfModelDirectory(path, config, configPath, weights,
            Optional("vocab.txt"), Optional("tokenizer.json"), Optional("tokenizer_config.json"));
    }

    /// <summary>Loads all weights onto the CPU (every shard when sharded). The caller owns the tensors.</summary>
    public Dictionary<string, Tensor> LoadWeights() =>
        IsSharded ? SafeTensorsIndex.Load(WeightsPath)
        : WeightsPath.EndsWith(".bin", StringComparison.Ordinal) ? PickleCheckpoint.Load(WeightsPath)
        : SafeTensors.Load(WeightsPath);

    /// <summary>
    /// Writes <c>config.json</c> and the weights as the directory <paramref name="path"/>, as a whole (see
    /// <see cref="StagedDirectory"/>): one <c>model.safetensors</c>, or shards plus an index when the tensors exceed
    /// <paramref name="maxShardBytes"/>. Tokenizer files are not written here. Returns the directory, opened.
    /// </summary>
    public static HfModelDirectory Save(string path, EncoderConfig config, IReadOnlyDictionary<string, Tensor> tensors,
        long maxShardBytes = 5L * 1024 * 1024 * 1024) =>
        Save(path, config.ToJson(), tensors, maxShardBytes);

    /// <summary>
    /// Saves a model directory as a whole: <see cref="Write"/> into a temporary sibling, then
    /// <paramref name="writeMore"/> (tokenizer files, settings…) into it, then the sibling replaces
    /// <paramref name="path"/> (see <see cref="StagedDirectory"/>): a previous directory survives any failure before
    /// that, and a reader never sees a mix. Returns the directory, opened.
    /// </summary>
    public static HfModelDirectory Save(string path, System.Text.Json.Nodes.JsonObject config, IReadOnlyDictionary<string, Tensor> tensors,
        long maxShardBytes = 5L * 1024 * 1024 * 1024, IReadOnlyDictionary<string, string>? metadata = null, Action<string>? writeMore = null)
    {
        StagedDirectory.Write(path, directory =>
        {
            Write(directory, config, tensors, maxShardBytes, metadata);
            writeMore?.Invoke(directory);
        });
        return Open(path);
    }

    /// <summary>
    /// The one writer of a model directory's files, into <paramref name="directory"/> — a directory being assembled
    /// (<see cref="StagedDirectory.Path"/>; <see cref="Save(string, System.Text.Json.Nodes.JsonObject, IReadOnlyDictionary{string, Tensor}, long, IReadOnlyDictionary{string, string}?, Action{string}?)"/>
    /// does that for you): <paramref name="config"/> (an architecture's config.json, plus what a task checkpoint adds:
    /// architectures, id2label…) is validated by reading it back as its architecture's record, then written with the
    /// weights. <paramref name="metadata"/> goes into the safetensors header.
    /// </summary>
    public static void Write(string directory, System.Text.Json.Nodes.JsonObject config, IReadOnlyDictionary<string, Tensor> tensors,
        long maxShardBytes = 5L * 1024 * 1024 * 1024, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(directory);
        string configPath = System.IO.Path.Combine(directory, "config.json");
        File.WriteAllText(configPath, config.ToJsonString(EncoderConfig.JsonOptions));
        Architectures.LoadConfig(configPath);
        SafeTensorsIndex.Save(directory, tensors, maxShardBytes, metadata ?? new Dictionary<string, string> { ["format"] = "pt" });
    }
}
