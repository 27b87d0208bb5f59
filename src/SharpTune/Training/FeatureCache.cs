using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SharpTune.Checkpoints;
using SharpTune.Heads;
using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>
/// The frozen backbone's output for every training example, computed once (eval mode, no gradient, batches
/// sorted by length) and kept: exactly what the head consumes, so each epoch costs only the head.
/// </summary>
/// <remarks>
/// With a disk directory, the features are also kept in <c>&lt;directory&gt;/&lt;key&gt;.safetensors</c> and later runs
/// read them back. The key is the SHA-256 of everything the features are a function of: the encoder's config and
/// in-memory weights (the parameters and buffers as they are now, not the file they came from — a model trained
/// in place differs from its file), the head's input kind, the precision, and every example's token ids and token
/// types (which already reflect the texts, the tokenizer and the maximum length). Changing any of them changes the
/// key. A cache file that cannot be read or does not fit is ignored and rewritten.
/// </remarks>
public sealed class FeatureCache : IDisposable
{
    private const string Format = "sharptune-features 2";
    private const string FeaturesKey = "features";

    private readonly Tensor? vectors;          // [examples, hidden] float32 for FirstToken, Pooled, MeanPooled
    private readonly Tensor[]? sequences;      // [length, hidden] float16 per example for Sequence

    /// <summary>
    /// Per-token features are kept in float16: one vector per token of every example is the largest thing the frozen
    /// path holds (MiniLM, 400k tokens: 0.6 GB in float32), and float16's 11-bit mantissa keeps a LayerNorm output's
    /// relative error below 5e-4, far inside what dropout does to the head's input. They are widened per batch.
    /// </summary>
    public const ScalarType SequenceStorage = ScalarType.Float16;

    private FeatureCache(Tensor? vectors, Tensor[]? sequences)
    {
        this.vectors = vectors;
        this.sequences = sequences;
    }

    /// <summary>The default disk cache: <c>$SHARPTUNE_HOME/features</c>, else <c>~/.cache/sharptune/features</c>.</summary>
    public static string DefaultDirectory => Path.Combine(PackagedModels.DefaultCacheRoot, "features");

    /// <summary>
    /// Encodes every example of <paramref name="data"/> once (the encoder in <paramref name="precision"/>, the features
    /// float32), or reads them from <paramref name="diskDirectory"/> when an earlier run left them there (null: no disk cache).
    /// Reports a <see cref="FeaturesCachedEvent"/> whose source is "computed" or "disk".
    /// </summary>
    public static FeatureCache Build(SequenceClassifier model, TaskDataset data, int batchSize, Device device, IProgress<TrainingEvent>? progress = null,
        Precision precision = Precision.Fp32, string? diskDirectory = null)
    {
        Native.TorchRuntime.EnsureLoaded();
        var clock = Stopwatch.StartNew();
        bool sequence = model.Head.Input == HeadInput.Sequence;
        string? path = diskDirectory is null ? null : Path.Combine(diskDirectory, Key(model, data, precision) + ".safetensors");
        if (path is not null && TryLoad(path, data, model.Encoder.Config.HiddenSize, sequence) is { } stored)
        {
            progress?.Report(new FeaturesCachedEvent(data.Count, clock.Elapsed.TotalSeconds, "disk", stored.Bytes));
            return stored;
        }

        var perExample = new Tensor[data.Count];
        bool wasTraining = model.Encoder.training;
        model.Encoder.eval();
        var batcher = new Batcher(data, batchSize, bucketing: true, model.Encoder.Config.PadTokenId);
        IReadOnlyList<int[]> plan = batcher.SortedPlan();
        using (var prefetcher = new BatchPrefetcher(batcher.Make, plan))
        using (no_grad())
        using (Autocast.Enter(precision))
            foreach (int[] indices in plan)
            {
                using var scope = NewDisposeScope();
                using Batch batch = prefetcher.Next();
                Tensor mask = batch.AttentionMask.to(device);
                Tensor features = model.EncodeFeatures(batch.InputIds.to(device), batch.TokenTypeIds.to(device), mask)
                    .to_type(ScalarType.Float32);
                for (int row = 0; row < indices.Length; row++)
                {
                    Tensor one = features[row];
                    if (sequence) one = one.narrow(0, 0, data.Length(indices[row])).to_type(SequenceStorage);
                    perExample[indices[row]] = one.clone().MoveToOuterDisposeScope();
                }
            }
        if (wasTraining) model.Encoder.train();
        FeatureCache cache;
        if (sequence) cache = new FeatureCache(null, perExample);
        else
        {
            cache = new FeatureCache(stack(perExample), null);
            foreach (var t in perExample) t.Dispose();
        }
        if (path is not null) cache.TrySave(path);
        progress?.Report(new FeaturesCachedEvent(data.Count, clock.Elapsed.TotalSeconds, "computed", cache.Bytes));
        return cache;
    }

    /// <summary>Bytes the cached features hold in memory.</summary>
    public long Bytes => vectors is not null ? vectors.NumberOfElements * vectors.ElementSize
        : sequences!.Sum(t => t.NumberOfElements * t.ElementSize);

    /// <summary>
    /// The cached features of a batch on <paramref name="device"/>: [batch, hidden] with no mask, or for a
    /// sequence head [batch, longest, hidden] padded with zeros and its attention mask.
    /// </summary>
    public (Tensor Features, Tensor? AttentionMask) Features(int[] indices, Device device)
    {
        if (vectors is not null)
        {
            using var index = tensor(indices.Select(i => (long)i).ToArray(), device: vectors.device); // index where the features are
            return (vectors.index_select(0, index).to(device), null);
        }
        var rows = indices.Select(i => sequences![i]).ToList();
        long longest = rows.Max(r => r.shape[0]);
        Tensor padded = stack(rows.Select(r => nn.functional.pad(r, [0, 0, 0, longest - r.shape[0]])).ToList()).to(device).to_type(ScalarType.Float32);
        Tensor mask = stack(rows.Select(r => cat([ones(r.shape[0], ScalarType.Int64), zeros(longest - r.shape[0], ScalarType.Int64)])).ToList()).to(device);
        return (padded, mask);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        vectors?.Dispose();
        if (sequences is not null) foreach (var t in sequences) t?.Dispose();
    }

    /// <summary>The disk cache key (64 hex digits) of <paramref name="data"/>'s features under <paramref name="model"/>'s encoder.</summary>
    internal static string Key(SequenceClassifier model, TaskDataset data, Precision precision)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Text(string s)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(s));
            hash.AppendData([0]);
        }
        Text(Format);
        Text(model.Encoder.Config.ToJson().ToJsonString()); // the runtime type: every key of the architecture
        Text(model.Head.Input.ToString());
        Text(precision.ToString());
        using (no_grad())
        {
            var tensors = model.Encoder.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Concat(model.Encoder.named_buffers());
            foreach (var (name, tensor) in tensors)
            {
                Text($"{name} {tensor.dtype} [{string.Join(',', tensor.shape)}]");
                using Tensor cpu = tensor.detach().cpu().contiguous();
                hash.AppendData(cpu.bytes);
            }
        }
        Text($"examples {data.Count}");
        for (int i = 0; i < data.Count; i++)
        {
            hash.AppendData(BitConverter.GetBytes(data.InputIds[i].Length));
            hash.AppendData(MemoryMarshal.AsBytes(data.InputIds[i].AsSpan()));
            hash.AppendData(MemoryMarshal.AsBytes(data.TokenTypeIds[i].AsSpan()));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    // Vector features are one [examples, hidden] tensor; sequence features are concatenated in dataset order,
    // [total tokens, hidden], and split by each example's length on reading.
    private void TrySave(string path)
    {
        using var scope = NewDisposeScope();
        Tensor features = vectors ?? cat(sequences!, 0);
        var metadata = new Dictionary<string, string> { ["format"] = Format };
        try
        {
            SafeTensors.Save(path, new Dictionary<string, Tensor> { [FeaturesKey] = features }, metadata);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SharpTuneException)
        {
            // A cache that cannot be written (full disk, read-only folder) only costs the next run a forward pass;
            // it must never fail the training that computed the features.
        }
    }

    private static FeatureCache? TryLoad(string path, TaskDataset data, int hidden, bool sequence)
    {
        if (!File.Exists(path)) return null;
        Dictionary<string, Tensor>? tensors = null;
        try
        {
            if (!SafeTensors.ReadMetadata(path).TryGetValue("format", out string? format) || format != Format) return null;
            tensors = SafeTensors.Load(path);
            long rows = sequence ? Enumerable.Range(0, data.Count).Sum(i => (long)data.Length(i)) : data.Count;
            if (tensors.Count != 1 || !tensors.TryGetValue(FeaturesKey, out Tensor? features) || features.dtype != (sequence ? SequenceStorage : ScalarType.Float32) ||
                !features.shape.SequenceEqual([rows, hidden]))
                return null;
            if (!sequence)
            {
                tensors.Clear();
                return new FeatureCache(features, null);
            }
            Tensor[] perExample = features.split(Enumerable.Range(0, data.Count).Select(i => (long)data.Length(i)).ToArray(), 0);
            return new FeatureCache(null, perExample);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null; // corrupt or unreadable (whatever the reader says): computed again and overwritten
        }
        finally
        {
            if (tensors is not null) foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
