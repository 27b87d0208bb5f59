using System.Globalization;

namespace SharpTune.Data;

/// <summary>
/// The label names of a classification task and their ids (0..Count-1), as a model's output rows.
/// Built from the training data (names sorted ordinally), saved as Hugging Face <c>id2label</c>/<c>label2id</c>.
/// </summary>
public sealed class LabelSet
{
    private readonly string[] _names;
    private readonly Dictionary<string, int> _ids;

    private LabelSet(string[] names)
    {
        _names = names;
        _ids = new Dictionary<string, int>(names.Length, StringComparer.Ordinal);
        for (int i = 0; i < names.Length; i++)
        {
            if (string.IsNullOrEmpty(names[i])) throw new SharpTuneException($"Label {i} has an empty name.");
            if (!_ids.TryAdd(names[i], i)) throw new SharpTuneException($"Label '{names[i]}' appears twice (ids {_ids[names[i]]} and {i}).");
        }
    }

    /// <summary>The names, indexed by id.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>How many labels.</summary>
    public int Count => _names.Length;

    /// <summary>The id of a label name.</summary>
    /// <exception cref="SharpTuneException">The name is not one of <see cref="Names"/>.</exception>
    public int Id(string name) => _ids.TryGetValue(name, out int id)
        ? id
        : throw new SharpTuneException($"Label '{name}' is not one of the {Count} known labels ({string.Join(", ", _names)}).");

    /// <summary>The id of a label name, if known.</summary>
    public bool TryGetId(string name, out int id) => _ids.TryGetValue(name, out id);

    /// <summary>The name of a label id.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is not in 0..Count-1.</exception>
    public string Name(int id) => (uint)id < (uint)_names.Length
        ? _names[id]
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"Label ids run from 0 to {Count - 1}.");

    /// <summary>A label set with these names, in this order (id = position).</summary>
    /// <exception cref="SharpTuneException">A name is empty or repeated.</exception>
    public static LabelSet FromNames(IEnumerable<string> names) => new(names.ToArray());

    /// <summary>Every label name that occurs in the training examples, sorted ordinally.</summary>
    public static LabelSet FromTraining(IEnumerable<TextExample> examples) =>
        new(examples.SelectMany(e => e.Labels).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray());

    /// <summary>
    /// Every distinct tag of token-classification data, sorted ordinally, with the outside tag <c>O</c> first
    /// when present (id 0, as in CoNLL/BIO tag sets).
    /// </summary>
    /// <exception cref="SharpTuneException">A tag is empty.</exception>
    public static LabelSet FromTags(IEnumerable<string> tags) =>
        new(tags.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).OrderBy(t => t != "O").ToArray());

    /// <summary>The HF <c>id2label</c> dictionary: id as a decimal string → name.</summary>
    public Dictionary<string, string> ToId2Label() =>
        _names.Select((name, id) => (name, id)).ToDictionary(p => p.id.ToString(CultureInfo.InvariantCulture), p => p.name);

    /// <summary>The HF <c>label2id</c> dictionary: name → id.</summary>
    public Dictionary<string, int> ToLabel2Id() => new(_ids, StringComparer.Ordinal);

    /// <summary>
    /// Reads HF <c>id2label</c> (and checks <c>label2id</c> against it when given). Ids must be exactly 0..n-1.
    /// </summary>
    /// <param name="id2label">id (decimal string) → name.</param>
    /// <param name="label2id">name → id, or null.</param>
    /// <param name="source">Named in errors, e.g. the config.json path.</param>
    /// <exception cref="SharpTuneException">An id is not a number, ids have gaps or repeats, or the two dictionaries disagree.</exception>
    public static LabelSet FromHuggingFace(IReadOnlyDictionary<string, string> id2label, IReadOnlyDictionary<string, int>? label2id = null, string source = "config.json")
    {
        var names = new string[id2label.Count];
        foreach ((string key, string name) in id2label)
        {
            if (!int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out int id) || id >= names.Length)
                throw new SharpTuneException($"{source}: id2label key '{key}' must be an id from 0 to {names.Length - 1}.");
            if (names[id] is not null) throw new SharpTuneException($"{source}: id2label has id {id} twice.");
            names[id] = name;
        }
        LabelSet labels;
        try { labels = new LabelSet(names); }
        catch (SharpTuneException e) { throw new SharpTuneException($"{source}: id2label: {e.Message}", e); }
        if (label2id is not null)
        {
            if (label2id.Count != labels.Count)
                throw new SharpTuneException($"{source}: label2id has {label2id.Count} entries but id2label has {labels.Count}.");
            foreach ((string name, int id) in label2id)
                if (!labels.TryGetId(name, out int expected) || expected != id)
                    throw new SharpTuneException($"{source}: label2id['{name}'] = {id} disagrees with id2label.");
        }
        return labels;
    }

    /// <summary>
    /// Checks that every label of <paramref name="data"/> (an eval or test file) is known. An unknown label
    /// throws, naming the file, line and label — or, with <paramref name="skipUnknown"/>, its row is skipped
    /// and counted in the returned data's <see cref="LoadedData.SkippedRows"/>.
    /// </summary>
    /// <exception cref="SharpTuneException">A label was not seen in training and <paramref name="skipUnknown"/> is false.</exception>
    public LoadedData Check(LoadedData data, bool skipUnknown = false)
    {
        var kept = new List<TextExample>(data.Examples.Count);
        var reasons = data.SkipReasons.ToList();
        int skipped = data.SkippedRows;
        foreach (TextExample example in data.Examples)
        {
            string? unknown = example.Labels.FirstOrDefault(l => !_ids.ContainsKey(l));
            if (unknown is null) { kept.Add(example); continue; }
            string message = $"{data.Path}:{example.Line}: column '{data.Columns.Label}': label '{unknown}' was not seen in training (known: {string.Join(", ", _names)}).";
            if (!skipUnknown) throw new SharpTuneException(message);
            skipped++;
            if (reasons.Count < TextDataset.MaxSkipReasons) reasons.Add(message);
        }
        return data with { Examples = kept, SkippedRows = skipped, SkipReasons = reasons };
    }
}
