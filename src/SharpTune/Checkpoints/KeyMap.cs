namespace SharpTune.Checkpoints;

/// <summary>
/// How the keys of one checkpoint source map onto a model's own parameter names. One table per source;
/// no key rewriting happens anywhere else.
/// </summary>
/// <param name="Source">A short name of the source, used in messages.</param>
/// <param name="StripPrefixes">
/// Prefixes a checkpoint key may carry that the model does not (e.g. <c>bert.</c> in a
/// <c>BertForPreTraining</c> checkpoint loaded into a bare <c>BertModel</c>). A key is used as-is when the
/// model has it; otherwise the first prefix whose removal yields a model key is stripped.
/// </param>
/// <param name="SuffixRenames">
/// Old names of a key's ending and their current name (e.g. TF-era <c>LayerNorm.gamma</c> → <c>LayerNorm.weight</c>),
/// applied before prefix matching.
/// </param>
public sealed record KeyMap(string Source, IReadOnlyList<string> StripPrefixes, IReadOnlyList<(string Old, string New)> SuffixRenames)
{
    /// <summary>Keys are the model's names exactly.</summary>
    public static readonly KeyMap Identity = new("identity", [], []);

    /// <summary>
    /// Hugging Face BERT checkpoints: keys with or without <c>bert.</c>, and the old <c>LayerNorm.gamma</c>/<c>beta</c>
    /// names, which <c>transformers</c> also still accepts.
    /// </summary>
    public static readonly KeyMap HuggingFaceBert = For(Models.BertModel.Registration);

    /// <summary>
    /// The key map of a Hugging Face checkpoint of <paramref name="architecture"/>: keys with or without its prefix
    /// (<c>roberta.</c>), and its old key endings renamed.
    /// </summary>
    public static KeyMap For(Models.Architecture architecture) =>
        new($"huggingface-{architecture.ModelType}", [architecture.KeyPrefix], architecture.KeyRenames);

    /// <summary>The key with its old suffix renamed (the key itself when no rename applies).</summary>
    public string Rename(string key)
    {
        foreach (var (old, @new) in SuffixRenames)
            if (key.EndsWith(old, StringComparison.Ordinal) && (key.Length == old.Length || key[key.Length - old.Length - 1] == '.'))
                return key[..^old.Length] + @new;
        return key;
    }

    /// <summary>
    /// The model key a checkpoint key maps to, given the model's keys; null when none matches (the key is then
    /// unexpected, or ignored by the caller).
    /// </summary>
    public string? Map(string key, IReadOnlySet<string> modelKeys)
    {
        string renamed = Rename(key);
        if (modelKeys.Contains(renamed)) return renamed;
        foreach (var prefix in StripPrefixes)
            if (renamed.StartsWith(prefix, StringComparison.Ordinal) && modelKeys.Contains(renamed[prefix.Length..]))
                return renamed[prefix.Length..];
        return null;
    }
}
