using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Checkpoints;

/// <summary>What <see cref="StateDict.LoadStrict"/> did.</summary>
/// <param name="Loaded">Model keys that received a checkpoint tensor.</param>
/// <param name="Ignored">Checkpoint or model keys skipped because they matched the ignore list.</param>
public sealed record StateDictLoadResult(IReadOnlyList<string> Loaded, IReadOnlyList<string> Ignored);

/// <summary>Copies checkpoint tensors into a module's parameters and buffers, and exports them back.</summary>
public static class StateDict
{
    /// <summary>
    /// Keys a <c>BertModel</c> load should ignore by default: <c>embeddings.position_ids</c> (a constant buffer
    /// that older HF checkpoints saved and newer ones do not) and <c>cls.*</c> (the pre-training MLM/NSP heads
    /// of <c>BertForPreTraining</c>/<c>BertForMaskedLM</c> checkpoints).
    /// </summary>
    public static readonly IReadOnlyList<string> BertModelIgnore = ["embeddings.position_ids", "cls.*"];

    /// <summary>
    /// Copies every checkpoint tensor into the module parameter or buffer of the same name (after
    /// <paramref name="keyMap"/>), under <c>no_grad</c>, converting dtype and device as <c>copy_</c> does.
    /// Nothing is copied unless the checkpoint matches: otherwise a single <see cref="SharpTuneException"/>
    /// names <paramref name="source"/> and lists every problem, as
    /// <c>missing: a, b; unexpected: c; mis-shaped: key: file [a,b] vs model [c,d]</c>.
    /// </summary>
    /// <param name="module">The model to fill.</param>
    /// <param name="tensors">Checkpoint tensors by key (e.g. from <see cref="SafeTensors.Load"/>); not disposed here.</param>
    /// <param name="source">The checkpoint file or directory, for messages.</param>
    /// <param name="keyMap">How checkpoint keys map to model keys; <see cref="KeyMap.Identity"/> when null.</param>
    /// <param name="ignore">
    /// Keys neither reported as unexpected (in the checkpoint) nor as missing (in the model): exact keys, or
    /// prefixes ending in <c>*</c> (<c>cls.*</c>). Matched against the checkpoint key before and after mapping.
    /// See <see cref="BertModelIgnore"/>.
    /// </param>
    public static StateDictLoadResult LoadStrict(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source,
        KeyMap? keyMap = null, IReadOnlyList<string>? ignore = null)
    {
        keyMap ??= KeyMap.Identity;
        ignore ??= [];
        var model = module.state_dict();
        var modelKeys = model.Keys.ToHashSet(StringComparer.Ordinal);

        var pairs = new List<(string FileKey, string ModelKey)>();
        var unexpected = new List<string>();
        var ignored = new List<string>();
        var duplicates = new List<string>();
        var mapped = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var fileKey in tensors.Keys.Order(StringComparer.Ordinal))
        {
            string? modelKey = keyMap.Map(fileKey, modelKeys);
            if (modelKey is null)
            {
                if (IsIgnored(fileKey, ignore) || IsIgnored(keyMap.Rename(fileKey), ignore) || StripsToIgnored(fileKey, keyMap, ignore)) ignored.Add(fileKey);
                else unexpected.Add(fileKey);
                continue;
            }
            if (mapped.TryGetValue(modelKey, out var first))
            {
                duplicates.Add($"{first} and {fileKey} both map to {modelKey}");
                continue;
            }
            mapped[modelKey] = fileKey;
            pairs.Add((fileKey, modelKey));
        }

        var missing = new List<string>();
        foreach (var key in modelKeys.Order(StringComparer.Ordinal))
        {
            if (mapped.ContainsKey(key)) continue;
            if (IsIgnored(key, ignore)) ignored.Add(key);
            else missing.Add(key);
        }

        var misShaped = pairs
            .Where(p => !tensors[p.FileKey].shape.SequenceEqual(model[p.ModelKey].shape))
            .Select(p => $"{p.FileKey}: file {Shape(tensors[p.FileKey])} vs model {Shape(model[p.ModelKey])}")
            .ToList();

        var problems = new List<string>();
        if (missing.Count > 0) problems.Add($"missing: {string.Join(", ", missing)}");
        if (unexpected.Count > 0) problems.Add($"unexpected: {string.Join(", ", unexpected)}");
        if (misShaped.Count > 0) problems.Add($"mis-shaped: {string.Join(", ", misShaped)}");
        if (duplicates.Count > 0) problems.Add($"duplicate: {string.Join(", ", duplicates)}");
        if (problems.Count > 0)
            throw new SharpTuneException($"{source}: checkpoint does not match the model ({keyMap.Source} key map) — {string.Join("; ", problems)}.");

        using (torch.no_grad())
        {
            foreach (var (fileKey, modelKey) in pairs)
                model[modelKey].copy_(tensors[fileKey]);
        }
        return new StateDictLoadResult(pairs.Select(p => p.ModelKey).ToList(), ignored);
    }

    /// <summary>
    /// The module's parameters and persistent buffers by name (its <c>state_dict</c>), each key prefixed with
    /// <paramref name="prefix"/> (e.g. <c>bert.</c>), ready for <see cref="SafeTensors.Save"/>. The tensors are
    /// detached aliases of the module's storage (no copy): dispose them when done; the module keeps its own.
    /// </summary>
    public static Dictionary<string, Tensor> ToDictionary(nn.Module module, string prefix = "")
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, tensor) in module.state_dict())
            result.Add(prefix + key, tensor.detach());
        return result;
    }

    /// <summary>True when <paramref name="key"/> equals a pattern, or starts with a pattern ending in <c>*</c>.</summary>
    public static bool IsIgnored(string key, IReadOnlyList<string> patterns) =>
        patterns.Any(p => p.EndsWith('*') ? key.StartsWith(p[..^1], StringComparison.Ordinal) : key == p);

    private static bool StripsToIgnored(string fileKey, KeyMap keyMap, IReadOnlyList<string> ignore)
    {
        string renamed = keyMap.Rename(fileKey);
        return keyMap.StripPrefixes.Any(p => renamed.StartsWith(p, StringComparison.Ordinal) && IsIgnored(renamed[p.Length..], ignore));
    }

    private static string Shape(Tensor t) => $"[{string.Join(",", t.shape)}]";
}
