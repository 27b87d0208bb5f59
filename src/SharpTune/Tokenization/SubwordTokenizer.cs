using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenization;

/// <summary>The model stage of a subword tokenizer (byte-level BPE, SentencePiece Unigram), as <see cref="SubwordTokenizer"/> uses it.</summary>
internal interface ISubwordModel
{
    int VocabSize { get; }
    int? TokenToId(string token);
    string? IdToToken(int id);
    /// <summary>Appends the pieces of a text holding no special token; <paramref name="asWord"/>: one pre-split word.</summary>
    void Tokenize(string text, List<Piece> pieces, int firstWord, bool asWord);
    /// <summary>Writes the model's own files (vocab.json + merges.txt, or the .model file).</summary>
    void Save(string directory);
}

/// <summary>
/// A byte-level BPE (RoBERTa) or SentencePiece Unigram (XLM-RoBERTa, DeBERTa-v3) tokenizer: the model stage, the
/// special tokens of <c>tokenizer_config.json</c> / <c>special_tokens_map.json</c> (and added tokens such as
/// <c>&lt;mask&gt;</c>), and the template of the architecture — <c>&lt;s&gt; A &lt;/s&gt;&lt;/s&gt; B &lt;/s&gt;</c> when the
/// classification token is <c>&lt;s&gt;</c>, else <c>[CLS] A [SEP] B [SEP]</c>.
/// </summary>
public sealed class SubwordTokenizer : Tokenizer
{
    private readonly ISubwordModel _model;
    private readonly Dictionary<int, string> _added;
    private readonly JsonObject _config;
    private readonly JsonObject? _tokenizerJson;

    private SubwordTokenizer(ISubwordModel model, TemplateProcessor template, IEnumerable<(string, int)> specials, Dictionary<int, string> added,
        int modelMaxLength, JsonObject config, JsonObject? tokenizerJson) : base(template, specials, modelMaxLength)
    {
        _model = model;
        _added = added;
        _config = config;
        _tokenizerJson = tokenizerJson;
    }

    /// <inheritdoc />
    public override int VocabSize => Math.Max(_model.VocabSize, _added.Count == 0 ? 0 : _added.Keys.Max() + 1);

    /// <inheritdoc />
    public override string? IdToToken(int id) => _added.TryGetValue(id, out string? token) ? token : _model.IdToToken(id);

    /// <inheritdoc />
    public override int? TokenToId(string token) =>
        _added.FirstOrDefault(a => a.Value == token) is { Value: not null } found ? found.Key : _model.TokenToId(token);

    /// <inheritdoc />
    protected override int TokenizeText(string text, List<Piece> pieces, int firstWord, bool asWord)
    {
        int before = pieces.Count;
        _model.Tokenize(text, pieces, firstWord, asWord);
        int next = firstWord;
        for (int i = before; i < pieces.Count; i++) next = Math.Max(next, pieces[i].Word + 1);
        return next;
    }

    /// <summary>
    /// Writes what it was read from — tokenizer.json, or the model's own files (vocab.json + merges.txt, the .model
    /// file) — with tokenizer_config.json and special_tokens_map.json, which Python's <c>AutoTokenizer</c> loads.
    /// </summary>
    public override void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        if (_tokenizerJson is not null) File.WriteAllText(Path.Combine(directory, "tokenizer.json"), _tokenizerJson.ToJsonString());
        else _model.Save(directory);
        var indented = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), _config.ToJsonString(indented) + "\n");
        var map = new JsonObject();
        foreach (string key in new[] { "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token" })
            if (_config[key] is { } value) map[key] = value.DeepClone();
        File.WriteAllText(Path.Combine(directory, "special_tokens_map.json"), map.ToJsonString(indented) + "\n");
    }

    /// <summary>Builds the tokenizer of <paramref name="directory"/> around <paramref name="model"/>, reading its special tokens.</summary>
    internal static SubwordTokenizer Create(ISubwordModel model, string directory, string defaultClass, JsonObject? tokenizerJson = null)
    {
        string configPath = Path.Combine(directory, "tokenizer_config.json");
        JsonObject config = File.Exists(configPath) ? StrictJson.ReadObject(configPath) : new JsonObject { ["tokenizer_class"] = defaultClass };
        string mapPath = Path.Combine(directory, "special_tokens_map.json");
        JsonObject map = File.Exists(mapPath) ? StrictJson.ReadObject(mapPath) : new JsonObject();
        bool fairseq = (config["tokenizer_class"]?.GetValue<string>() ?? defaultClass).Contains("Roberta", StringComparison.Ordinal);

        // Added tokens beyond the model's vocabulary (XLM-R's <mask> after the pieces, DeBERTa's [MASK]).
        var added = new Dictionary<int, string>();
        if (config["added_tokens_decoder"] is JsonObject decoder)
            foreach (var (id, entry) in decoder)
                if (int.TryParse(id, out int value) && Content(entry) is { } content && model.TokenToId(content) is null) added[value] = content;
        string addedPath = Path.Combine(directory, "added_tokens.json");
        if (File.Exists(addedPath))
            foreach (var (content, id) in StrictJson.ReadObject(addedPath))
                if (id is JsonValue v && v.TryGetValue(out int value) && model.TokenToId(content) is null) added[value] = content;

        string Token(string key, string fallback) => Content(config[key]) ?? Content(map[key]) ?? fallback;
        int Id(string key, string token)
        {
            if (added.FirstOrDefault(a => a.Value == token) is { Value: not null } found) return found.Key;
            return model.TokenToId(token) ?? throw new SharpTuneException($"{directory}: the {key} '{token}' is not in the vocabulary.");
        }
        string cls = Token("cls_token", fairseq ? "<s>" : "[CLS]"), sep = Token("sep_token", fairseq ? "</s>" : "[SEP]");
        string pad = Token("pad_token", fairseq ? "<pad>" : "[PAD]"), unk = Token("unk_token", fairseq ? "<unk>" : "[UNK]");
        string mask = Token("mask_token", fairseq ? "<mask>" : "[MASK]");
        // XLM-R's <mask> follows the pieces when no file lists it (fairseq's dictionary).
        if (fairseq && model.TokenToId(mask) is null && !added.ContainsValue(mask)) added[model.VocabSize] = mask;
        var specials = new List<(string, int)> { (cls, Id("cls_token", cls)), (sep, Id("sep_token", sep)), (pad, Id("pad_token", pad)), (unk, Id("unk_token", unk)) };
        if (added.ContainsValue(mask) || model.TokenToId(mask) is not null) specials.Add((mask, Id("mask_token", mask)));
        if (config["bos_token"] is null) config["bos_token"] = cls;
        foreach (var (key, value) in new[] { ("cls_token", cls), ("sep_token", sep), ("pad_token", pad), ("unk_token", unk), ("mask_token", mask) })
            config[key] ??= value;
        config["tokenizer_class"] ??= defaultClass;

        var template = cls == "<s>"
            ? TemplateProcessor.Roberta(Id("cls_token", cls), Id("sep_token", sep), Id("pad_token", pad))
            : TemplateProcessor.Bert(Id("cls_token", cls), Id("sep_token", sep), Id("pad_token", pad));
        int maxLength = config["model_max_length"] is JsonValue m && m.TryGetValue(out double length) && length is > 0 and < int.MaxValue ? (int)length : 512;
        return new SubwordTokenizer(model, template, specials, added, maxLength, config, tokenizerJson);
    }

    private static string? Content(JsonNode? node) => node switch
    {
        JsonValue value when value.TryGetValue(out string? text) => text,
        JsonObject entry => entry["content"]?.GetValue<string>(),
        _ => null,
    };
}

/// <summary>Byte-level BPE as an <see cref="ISubwordModel"/>.</summary>
internal sealed class ByteLevelBpeModel(ByteLevelBpe bpe) : ISubwordModel
{
    public int VocabSize => bpe.VocabSize;
    public int? TokenToId(string token) => bpe.TokenToId(token);
    public string? IdToToken(int id) => bpe.IdToToken(id);
    public void Tokenize(string text, List<Piece> pieces, int firstWord, bool asWord) => bpe.Tokenize(text, pieces, firstWord, asWord);
    public void Save(string directory) => bpe.Save(directory);
}

/// <summary>SentencePiece Unigram as an <see cref="ISubwordModel"/>; a pre-split word gets its own ▁ prefix anyway.</summary>
internal sealed class SentencePieceModel(SentencePieceUnigram unigram) : ISubwordModel
{
    public int VocabSize => unigram.VocabSize;
    public int? TokenToId(string token) => unigram.TokenToId(token);
    public string? IdToToken(int id) => unigram.IdToToken(id);
    public void Tokenize(string text, List<Piece> pieces, int firstWord, bool asWord) => unigram.Tokenize(text, pieces, firstWord);
    public void Save(string directory) => unigram.Save(directory);
}
