using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace SharpTune.Checkpoints;

/// <summary>
/// A Hugging Face sharded-checkpoint index, <c>model.safetensors.index.json</c> (or <c>pytorch_model.bin.index.json</c>,
/// whose shards are read by <see cref="PickleCheckpoint"/>):
/// <c>{"metadata": {"total_size": N}, "weight_map": {"key": "model-00001-of-00002.safetensors", ...}}</c>.
/// </summary>
/// <param name="Path">The index file.</param>
/// <param name="TotalSize">The <c>metadata.total_size</c> value (bytes of tensor data), or null when absent.</param>
/// <param name="WeightMap">Tensor key → shard file name (relative to the index's directory, which it may not leave: see <see cref="SafePath"/>).</param>
public sealed record SafeTensorsIndex(string Path, long? TotalSize, IReadOnlyDictionary<string, string> WeightMap)
{
    /// <summary>The standard name of the index file.</summary>
    public const string FileName = "model.safetensors.index.json";

    /// <summary>The distinct shard file names, in first-mention order.</summary>
    public IReadOnlyList<string> Shards => WeightMap.Values.Distinct(StringComparer.Ordinal).ToList();

    /// <summary>Reads and checks an index file; errors name the file and the key.</summary>
    public static SafeTensorsIndex Read(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: file not found.");
        JsonNode? root;
        try
        {
            root = StrictJson.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{path}: malformed JSON (line {e.LineNumber + 1}): {e.Message}", e);
        }
        if (root is not JsonObject obj) throw new SharpTuneException($"{path}: expected a JSON object.");
        long? totalSize = null;
        if (obj["metadata"] is JsonObject metadata && metadata["total_size"] is JsonValue total)
        {
            if (!total.TryGetValue(out long size) || size < 0)
                throw new SharpTuneException($"{path}: metadata.total_size must be a non-negative integer, got {total.ToJsonString()}.");
            totalSize = size;
        }
        if (obj["weight_map"] is not JsonObject weightMap)
            throw new SharpTuneException($"{path}: missing the \"weight_map\" object (tensor key → shard file).");
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in weightMap)
        {
            if (value is not JsonValue v || !v.TryGetValue(out string? file) || string.IsNullOrEmpty(file))
                throw new SharpTuneException($"{path}: weight_map.{key} must be a shard file name.");
            SafePath.Within(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, file, path, $"weight_map.{key}");
            map[key] = file;
        }
        if (map.Count == 0) throw new SharpTuneException($"{path}: weight_map is empty.");
        return new SafeTensorsIndex(path, totalSize, map);
    }

    /// <summary>
    /// Loads every shard the index names and returns all tensors. Every key of the weight map must be in its
    /// shard, and every tensor of a shard must be listed in the weight map for that shard; otherwise a
    /// <see cref="SharpTuneException"/> lists the offending keys.
    /// </summary>
    public static Dictionary<string, Tensor> Load(string indexPath)
    {
        var index = Read(indexPath);
        string directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in index.Shards)
            {
                string shardPath = SafePath.Within(directory, shard, indexPath, $"weight_map.{index.WeightMap.First(kv => kv.Value == shard).Key}");
                if (!File.Exists(shardPath))
                    throw new SharpTuneException($"{indexPath}: shard '{shard}' is listed in weight_map but {shardPath} does not exist.");
                var expected = index.WeightMap.Where(kv => kv.Value == shard).Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
                // A safetensors shard's header is checked first, so a mismatched shard fails before its tensors are read.
                bool pickle = shard.EndsWith(".bin", StringComparison.Ordinal);
                var loaded = pickle ? PickleCheckpoint.Load(shardPath) : null;
                var present = (loaded?.Keys ?? SafeTensors.ReadHeader(shardPath).Names).ToHashSet(StringComparer.Ordinal);
                var absent = expected.Where(k => !present.Contains(k)).Order(StringComparer.Ordinal).ToList();
                var unlisted = present.Where(k => !expected.Contains(k)).Order(StringComparer.Ordinal).ToList();
                if ((absent.Count > 0 || unlisted.Count > 0) && loaded is not null)
                    foreach (var t in loaded.Values) t.Dispose();
                if (absent.Count > 0)
                    throw new SharpTuneException($"{indexPath}: weight_map puts {string.Join(", ", absent)} in {shard}, but that shard does not contain them.");
                if (unlisted.Count > 0)
                    throw new SharpTuneException($"{indexPath}: shard {shard} contains {string.Join(", ", unlisted)}, which weight_map does not assign to it.");
                foreach (var (key, tensor) in loaded ?? SafeTensors.Load(shardPath)) result.Add(key, tensor);
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>
    /// Writes tensors as HF does: a single <c>model.safetensors</c> when everything fits in
    /// <paramref name="maxShardBytes"/>, otherwise <c>model-0000i-of-0000n.safetensors</c> shards (keys in
    /// ordinal order, a new shard whenever the next tensor would overflow the current one; a tensor larger than
    /// the limit gets a shard of its own) plus <c>model.safetensors.index.json</c>. Returns the written files.
    /// </summary>
    public static IReadOnlyList<string> Save(string directory, IReadOnlyDictionary<string, Tensor> tensors, long maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (maxShardBytes <= 0) throw new SharpTuneException($"maxShardBytes must be positive, got {maxShardBytes}.");
        Directory.CreateDirectory(directory);
        var shards = new List<Dictionary<string, Tensor>> { new(StringComparer.Ordinal) };
        long current = 0, total = 0;
        foreach (var (key, tensor) in tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            long size = tensor.numel() * tensor.ElementSize;
            if (current > 0 && current + size > maxShardBytes)
            {
                shards.Add(new Dictionary<string, Tensor>(StringComparer.Ordinal));
                current = 0;
            }
            shards[^1].Add(key, tensor);
            current += size;
            total += size;
        }
        if (shards.Count == 1)
        {
            string single = System.IO.Path.Combine(directory, "model.safetensors");
            SafeTensors.Save(single, shards[0], metadata);
            return [single];
        }
        var written = new List<string>();
        var weightMap = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            string shardPath = System.IO.Path.Combine(directory, name);
            SafeTensors.Save(shardPath, shards[i], metadata);
            written.Add(shardPath);
            foreach (var key in shards[i].Keys) weightMap[key] = name;
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = weightMap,
        };
        string indexPath = System.IO.Path.Combine(directory, FileName);
        File.WriteAllText(indexPath, index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        written.Add(indexPath);
        return written;
    }
}
