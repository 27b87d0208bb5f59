using System.Diagnostics;
using SharpTune.Tokenization;
using Xunit.Abstractions;

namespace SharpTune.Tests.Tokenization;

/// <summary>BertTokenizer against Hugging Face's Rust tokenizer (the engine of BertTokenizerFast), id for id.</summary>
public class HuggingFaceParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> HardStrings => new()
    {
        "", " ", "Hello, World!", "HELLO world", "café Café CAFÉ résumé naïve Über ÅNGSTRÖM",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "a$b=c+d<e>f^g|h~i`j", "price: $5 = 3+2 <html> a^b x|y ~tilde `code`",
        "中文字符和English混合", "日本語のテキストです。한국어 텍스트", "\u0000nul\u0001ctrl\u007fdel\u200bzwsp\u00adsoft\uFEFFbom\uFFFDrepl",
        "tab\there\nnewline\r\ncr\u00a0nbsp\u2028ls\u2029ps\u3000ideo\u000bvt\u000cff\u0085nel",
        "private\uE000use\uF8FF and \U000F0000 supplementary", "emoji 😀 🥰 🧑‍💻 flags 🇫🇷", "math 𝐀𝐁𝐂 ∑∫√ ≤≥ ±×÷",
        "[CLS] literal [SEP] tokens [MASK] in [PAD] text [UNK]", "x[CLS]y[SEP]z", "[cls] lowercase is not special", "[[CLS]]", "[CLS",
        new string('a', 100), new string('a', 101), new string('é', 101), "tokenization unaffable jalapeño ☃ snowman",
        "İstanbul ΣΊΣΥΦΟΣ Straße ǅemal ﬁne ﬀ", "dots... and—dashes – “quotes” «guillemets» ‘single’ ¿qué? ¡sí!",
        "Ａｂｃ full-width １２３ ｶﾀｶﾅ", "combining e\u0301 a\u0308 n\u0303 alone \u0301", "lone \ud800 surrogate \udc00 end",
        "\u4e00\u9fff\u3400\uf900\U00020000\U0002A700 cjk edges \u3041 hiragana \uac00 hangul",
        "URLs http://example.com/path?q=1&r=2#frag user@mail.example.org", "numbers 3.14159 1,000,000 50% 2nd",
        "arabic مرحبا hebrew שלום thai สวัสดี devanagari नमस्ते", "ǈ Ǉ ǉ ẞ ß ﬃ Ⅻ ⅻ ①", "\u0130 \u0131 I i",
    };

    [Theory]
    [MemberData(nameof(HardStrings))]
    public void Ids_match_huggingface_on_hard_strings(string text)
    {
        long[] expected = HuggingFaceOracle.Encode(text);
        long[] actual = MiniLMVocab.Tokenizer.Encode(text, maxLength: int.MaxValue).InputIds;
        Assert.Equal(expected, actual);
    }

    // Where HF's Rust tokenizers (AutoTokenizer's) and its Python BertTokenizer disagree, SharpTune follows Rust.
    [Theory]
    [InlineData("a\u0378b", "an unassigned code point stays in the word, so the word becomes [UNK] (Python drops it)")]
    [InlineData("x\U0002B920y \U0002B81Fz", "CJK Extension E starts at U+2B920 in Rust's table: it is split off as a word")]
    [InlineData("\U0002CEAF \U0002B91F", "the edges around Extension E")]
    [InlineData("a\U0002B820b", "U+2B820 is not CJK for Rust: the word stays whole and becomes [UNK]")]
    public void WordPiece_follows_the_Rust_tokenizer_where_it_differs_from_Python(string escaped, string why)
    {
        string text = System.Text.RegularExpressions.Regex.Unescape(escaped);
        long[] expected = HuggingFaceOracle.Encode(text);
        long[] actual = MiniLMVocab.Tokenizer.Encode(text, maxLength: int.MaxValue).InputIds;
        Assert.True(expected.SequenceEqual(actual), $"{why}: [{string.Join(",", actual)}] vs Rust [{string.Join(",", expected)}]");
        if (text.Contains('\u0378')) Assert.Contains(MiniLMVocab.Tokenizer.UnkTokenId, actual.Select(id => (int)id));
    }

    [SpamAssassinFact]
    public void Ids_match_huggingface_on_every_spamassassin_training_text()
    {
        string path = Csv.SpamAssassinTrain()!;
        List<string> texts = Csv.ReadRecords(path).Skip(1).Select(r => r[0]).ToList();
        Assert.True(texts.Count > 1000, $"{path}: expected thousands of texts, read {texts.Count}.");
        BertTokenizer tokenizer = MiniLMVocab.Tokenizer;
        var mismatches = new List<int>();
        long tokens = 0;
        var clock = Stopwatch.StartNew();
        var ours = new long[texts.Count][];
        for (int i = 0; i < texts.Count; i++) ours[i] = tokenizer.Encode(texts[i], maxLength: int.MaxValue).InputIds;
        clock.Stop();
        for (int i = 0; i < texts.Count; i++)
        {
            tokens += ours[i].Length;
            if (!HuggingFaceOracle.Encode(texts[i]).AsSpan().SequenceEqual(ours[i])) mismatches.Add(i);
        }
        output.WriteLine($"{texts.Count} texts, {tokens} tokens, {tokens / clock.Elapsed.TotalSeconds:F0} tokens/s (one thread), {mismatches.Count} mismatches");
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {texts.Count} texts differ from HF, first: row {mismatches.FirstOrDefault() + 2}: {(mismatches.Count > 0 ? texts[mismatches[0]][..Math.Min(200, texts[mismatches[0]].Length)] : "")}");
    }
}
