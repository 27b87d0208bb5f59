namespace SharpTune.Tokenization;

/// <summary>
/// Settings of a <see cref="BertTokenizer"/>: the keys of HF's <c>tokenizer_config.json</c> and of the
/// <c>BertNormalizer</c> / <c>WordPiece</c> sections of <c>tokenizer.json</c>. Defaults are those of
/// <c>bert-base-uncased</c>.
/// </summary>
public sealed record BertTokenizerOptions
{
    /// <summary>Lowercase every character (<c>do_lower_case</c>).</summary>
    public bool LowerCase { get; init; } = true;
    /// <summary>Strip accents (NFD, then drop non-spacing marks); <c>null</c> follows <see cref="LowerCase"/> (<c>strip_accents</c>).</summary>
    public bool? StripAccents { get; init; }
    /// <summary>Put spaces around CJK ideographs so that each is a word (<c>tokenize_chinese_chars</c>).</summary>
    public bool TokenizeChineseChars { get; init; } = true;
    /// <summary>Remove NUL, U+FFFD and control/format/private-use characters and map whitespace to a space (<c>clean_text</c>).</summary>
    public bool CleanText { get; init; } = true;
    /// <summary>Longest input the model accepts (<c>model_max_length</c>); the default <c>maxLength</c> of encoding.</summary>
    public int ModelMaxLength { get; init; } = 512;
    /// <summary>Words longer than this many characters become the unknown token (<c>max_input_chars_per_word</c>).</summary>
    public int MaxInputCharsPerWord { get; init; } = 100;
    /// <summary>Unknown token.</summary>
    public string UnkToken { get; init; } = "[UNK]";
    /// <summary>Separator token, closes each sequence.</summary>
    public string SepToken { get; init; } = "[SEP]";
    /// <summary>Padding token.</summary>
    public string PadToken { get; init; } = "[PAD]";
    /// <summary>Classification token, opens the input.</summary>
    public string ClsToken { get; init; } = "[CLS]";
    /// <summary>Mask token (optional in the vocabulary).</summary>
    public string MaskToken { get; init; } = "[MASK]";
    /// <summary>Further tokens that are never split and are matched literally in texts (<c>additional_special_tokens</c>).</summary>
    public IReadOnlyList<string> AdditionalSpecialTokens { get; init; } = [];

    /// <summary>Whether accents are stripped once <see cref="StripAccents"/> defaults to <see cref="LowerCase"/>.</summary>
    public bool EffectiveStripAccents => StripAccents ?? LowerCase;
}
