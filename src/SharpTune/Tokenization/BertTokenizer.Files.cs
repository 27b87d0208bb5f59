using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenization;

public sealed partial class BertTokenizer
{
    /// <summary>
    /// Loads a Hugging Face tokenizer directory: <c>vocab.txt</c> (or <c>tokenizer.json</c>'s <c>model.vocab</c> without it),
    /// <c>tokenizer.json</c>'s BertNormalizer and WordPiece settings where present, then <c>tokenizer_config.json</c> and
    /// <c>special_tokens_map.json</c>, whose explicit keys win (as <c>BertTokenizerFast</c> rebuilds its normalizer from them).
    /// </summary>
    /// <exception cref="SharpTuneException">A file is missing or malformed; the message names it and the key.</exception>
    public static new BertTokenizer FromDirectory(string directory)
    {
        if (!Directory.Exists(directory)) throw new SharpTuneException($"{directory}: the tokenizer directory does not exist.");
        string vocabPath = Path.Combine(directory, "vocab.txt");
        string jsonPath = Path.Combine(directory, "tokenizer.json");
        string configPath = Path.Combine(directory, "tokenizer_config.json");
        string mapPath = Path.Combine(directory, "special_tokens_map.json");

        var options = new BertTokenizerOptions();
        Dictionary<string, int>? vocab = null;
        string vocabSource = vocabPath;
        if (File.Exists(jsonPath))
        {
            JsonObject json = StrictJson.ReadObject(jsonPath);
            options = ApplyTokenizerJson(options, json, jsonPath, out vocab);
            vocabSource = jsonPath;
        }
        if (File.Exists(vocabPath))
        {
            vocab = ReadVocab(vocabPath);
            vocabSource = vocabPath;
        }
        if (vocab is null)
            throw new SharpTuneException($"{vocabPath}: missing, and the directory has no tokenizer.json with a model.vocab either.");
        if (File.Exists(configPath)) options = ApplyConfig(options, StrictJson.ReadObject(configPath), configPath, onlyMissingTokens: false);
        if (File.Exists(mapPath)) options = ApplyConfig(options, StrictJson.ReadObject(mapPath), mapPath, onlyMissingTokens: true, tokenizerConfig: File.Exists(configPath) ? StrictJson.ReadObject(configPath) : null);
        return new BertTokenizer(vocab, options, vocabSource);
    }

    /// <summary>Loads a WordPiece vocabulary file (one token a line, the line number is the id) with <paramref name="options"/>.</summary>
    /// <exception cref="SharpTuneException">The file is missing, empty or lacks a required special token.</exception>
    public static BertTokenizer FromVocabFile(string path, BertTokenizerOptions? options = null) =>
        new(ReadVocab(path), options, path);

    /// <summary>
    /// Writes <c>vocab.txt</c> (LF line ends), <c>tokenizer_config.json</c> (tokenizer_class BertTokenizer) and
    /// <c>special_tokens_map.json</c>, which Python's <c>AutoTokenizer.from_pretrained</c> loads. <see cref="BertTokenizerOptions.CleanText"/>
    /// has no key there (HF always cleans) and is not saved.
    /// </summary>
    public override void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var vocab = new StringBuilder();
        for (int id = 0; id < _idToToken.Length; id++)
        {
            string token = _idToToken[id] ?? throw new SharpTuneException($"{directory}: cannot write vocab.txt, the vocabulary has no token with id {id}.");
            vocab.Append(token).Append('\n');
        }
        File.WriteAllText(Path.Combine(directory, "vocab.txt"), vocab.ToString(), new UTF8Encoding(false));

        JsonObject SpecialTokens()
        {
            var map = new JsonObject
            {
                ["cls_token"] = Options.ClsToken,
                ["mask_token"] = Options.MaskToken,
                ["pad_token"] = Options.PadToken,
                ["sep_token"] = Options.SepToken,
                ["unk_token"] = Options.UnkToken,
            };
            if (Options.AdditionalSpecialTokens.Count > 0)
                map["additional_special_tokens"] = new JsonArray(Options.AdditionalSpecialTokens.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray());
            return map;
        }
        JsonObject config = SpecialTokens();
        config["tokenizer_class"] = "BertTokenizer";
        config["do_lower_case"] = Options.LowerCase;
        config["strip_accents"] = Options.StripAccents is { } strip ? JsonValue.Create(strip) : null;
        config["tokenize_chinese_chars"] = Options.TokenizeChineseChars;
        config["model_max_length"] = Options.ModelMaxLength;
        config["clean_up_tokenization_spaces"] = true;
        var indented = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(indented) + "\n");
        File.WriteAllText(Path.Combine(directory, "special_tokens_map.json"), SpecialTokens().ToJsonString(indented) + "\n");
    }

    /// <summary>Reads vocab.txt: the token of line n (0-based) has id n; line ends LF or CRLF; a repeated token keeps its last id, as HF does.</summary>
    internal static Dictionary<string, int> ReadVocab(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: vocabulary file not found.");
        string text = File.ReadAllText(path, Encoding.UTF8);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        if (text.Length == 0) throw new SharpTuneException($"{path}: the vocabulary is empty.");
        string[] lines = text.Split('\n');
        int count = lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
        for (int i = 0; i < count; i++) vocab[lines[i].TrimEnd('\r')] = i;
        return vocab;
    }

    private static BertTokenizerOptions ApplyTokenizerJson(BertTokenizerOptions options, JsonObject json, string path, out Dictionary<string, int>? vocab)
    {
        vocab = null;
        if (json["normalizer"] is JsonObject normalizer)
        {
            JsonObject? bert = Type(normalizer) == "BertNormalizer" ? normalizer
                : Type(normalizer) == "Sequence" ? (normalizer["normalizers"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(n => Type(n) == "BertNormalizer") : null;
            if (bert is null) throw new SharpTuneException($"{path}: normalizer.type '{Type(normalizer)}' is not supported; a BERT tokenizer needs a BertNormalizer.");
            options = options with
            {
                CleanText = Bool(bert, "clean_text", path, "normalizer") ?? options.CleanText,
                TokenizeChineseChars = Bool(bert, "handle_chinese_chars", path, "normalizer") ?? options.TokenizeChineseChars,
                StripAccents = Bool(bert, "strip_accents", path, "normalizer"),
                LowerCase = Bool(bert, "lowercase", path, "normalizer") ?? options.LowerCase,
            };
        }
        if (json["model"] is JsonObject model)
        {
            if (Type(model) is { } type && type != "WordPiece")
                throw new SharpTuneException($"{path}: model.type '{type}' is not supported; a BERT tokenizer needs WordPiece.");
            if (model["unk_token"] is JsonValue unk) options = options with { UnkToken = unk.GetValue<string>() };
            if (model["max_input_chars_per_word"] is JsonValue max) options = options with { MaxInputCharsPerWord = max.GetValue<int>() };
            if (model["continuing_subword_prefix"] is JsonValue prefix && prefix.GetValue<string>() != ContinuationPrefix)
                throw new SharpTuneException($"{path}: model.continuing_subword_prefix '{prefix}' is not supported; only '##'.");
            if (model["vocab"] is JsonObject entries)
            {
                vocab = new Dictionary<string, int>(StringComparer.Ordinal);
                foreach (var (token, id) in entries)
                {
                    if (id is not JsonValue value || !value.TryGetValue(out int number))
                        throw new SharpTuneException($"{path}: model.vocab['{token}'] must be an integer id.");
                    vocab[token] = number;
                }
            }
        }
        return options;
    }

    private static BertTokenizerOptions ApplyConfig(BertTokenizerOptions options, JsonObject config, string path, bool onlyMissingTokens, JsonObject? tokenizerConfig = null)
    {
        if (!onlyMissingTokens)
        {
            options = options with
            {
                LowerCase = Bool(config, "do_lower_case", path) ?? options.LowerCase,
                StripAccents = config.ContainsKey("strip_accents") ? Bool(config, "strip_accents", path) : options.StripAccents,
                TokenizeChineseChars = Bool(config, "tokenize_chinese_chars", path) ?? options.TokenizeChineseChars,
            };
            if (config["model_max_length"] is JsonValue max)
            {
                if (!max.TryGetValue(out double length) || length < 2)
                    throw new SharpTuneException($"{path}: model_max_length must be a number of at least 2, got {max.ToJsonString()}.");
                options = options with { ModelMaxLength = (int)Math.Min(length, int.MaxValue) };
            }
        }
        string? Token(string key)
        {
            if (onlyMissingTokens && tokenizerConfig?[key] is not null) return null;
            return config[key] switch
            {
                null => null,
                JsonValue value when value.TryGetValue(out string? s) => s,
                JsonObject added when added["content"] is JsonValue content && content.TryGetValue(out string? s) => s,
                var other => throw new SharpTuneException($"{path}: {key} must be a string or an object with a 'content' string, got {other.ToJsonString()}."),
            };
        }
        options = options with
        {
            UnkToken = Token("unk_token") ?? options.UnkToken,
            SepToken = Token("sep_token") ?? options.SepToken,
            PadToken = Token("pad_token") ?? options.PadToken,
            ClsToken = Token("cls_token") ?? options.ClsToken,
            MaskToken = Token("mask_token") ?? options.MaskToken,
        };
        if (config["additional_special_tokens"] is JsonArray extra && !(onlyMissingTokens && tokenizerConfig?["additional_special_tokens"] is not null))
        {
            options = options with
            {
                AdditionalSpecialTokens = extra.Select(e => e switch
                {
                    JsonValue value when value.TryGetValue(out string? s) => s,
                    JsonObject added when added["content"] is JsonValue content && content.TryGetValue(out string? s) => s,
                    _ => throw new SharpTuneException($"{path}: additional_special_tokens entries must be strings, got {e?.ToJsonString()}."),
                }).ToArray(),
            };
        }
        return options;
    }

    private static string? Type(JsonObject node) => node["type"] is JsonValue type && type.TryGetValue(out string? s) ? s : null;

    private static bool? Bool(JsonObject node, string key, string path, string? section = null) => node[key] switch
    {
        null => null,
        JsonValue value when value.TryGetValue(out bool b) => b,
        var other => throw new SharpTuneException($"{path}: {(section is null ? key : section + "." + key)} must be true, false or null, got {other.ToJsonString()}."),
    };
}
