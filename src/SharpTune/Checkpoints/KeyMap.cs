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
/// <param name="PrefixRenames">
/// Old names of a key's beginning and their current name, tried when the key itself is not a model key (e.g. a
/// SharpTune run of format 1 saved a head without HF class under <c>classifier.</c>, now <c>sharptune_head.</c>).
/// </param>
public sealed record KeyMap(string Source, IReadOnlyList<string> StripPrefixes, IReadOnlyList<(string Old, string New)> SuffixRenames,
    IReadOnlyList<(string Old, string New)>? PrefixRenames = null)
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

    /// <summary>
    /// SharpTune run directories of format 1 (sharptune.json <c>format_version</c> 1): a head without HF class was saved
    /// with HF-looking keys — <c>classifier.*</c>, or its submodules at the top level when
    /// <see cref="Heads.Head.KeysAtRoot"/> — which now sit under <see cref="Models.SequenceClassifier.CustomHeadPrefix"/>.
    /// </summary>
    public static KeyMap SharpTuneFormat1(Models.Architecture architecture, Heads.Head head) =>
        new("sharptune-format-1", [], architecture.KeyRenames, head.KeysAtRoot
            ? head.named_children().Select(c => (c.name + ".", Models.SequenceClassifier.CustomHeadPrefix + c.name + ".")).ToList()
            : [(Models.SequenceClassifier.HeadName + ".", Models.SequenceClassifier.CustomHeadPrefix)]);

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
        foreach (var (old, @new) in PrefixRenames ?? [])
            if (renamed.StartsWith(old, StringComparison.Ordinal) && modelKeys.Contains(@new + renamed[old.Length..]))
                return @new + renamed[old.Length..];
        foreach (var prefix in StripPrefixes)
            if (renamed.StartsWith(prefix, StringComparison.Ordinal) && modelKeys.Contains(renamed[prefix.Length..]))
                return renamed[prefix.Length..];
        return null;
    }
}
