using System.Text.Json.Nodes;
using SharpTune.Tests.Fixtures;
using SharpTune.Tokenization;
using Xunit.Abstractions;

namespace SharpTune.Tests.Tokenization;

/// <summary>
/// SentencePieceUnigram against the slow-tokenizer fixtures (transformers 4.45.2) and against Hugging Face's Rust
/// tokenizers over the converted tokenizer.json, for XLM-RoBERTa (fairseq ids) and DeBERTa-v3 (piece ids).
/// </summary>
public class SentencePieceUnigramTests(ITestOutputHelper output)
{
    public static TheoryData<string, bool> Sources => new()
    {
        { "xlm-roberta", false }, { "xlm-roberta", true }, { "deberta-v2", false }, { "deberta-v2", true },
    };

    public static TheoryData<string> Architectures => new() { "xlm-roberta", "deberta-v2" };

    private static readonly Dictionary<(string, bool), SentencePieceUnigram> Cache = [];

    private static SentencePieceUnigram Load(string architecture, bool fromTokenizerJson)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue((architecture, fromTokenizerJson), out var tokenizer))
            {
                var (path, fairseq) = SentencePieceOracle.ModelFile(architecture);
                tokenizer = fromTokenizerJson
                    ? SentencePieceUnigram.FromTokenizerJson(SentencePieceOracle.TokenizerJson(architecture), $"{architecture} converted tokenizer.json")
                    : SentencePieceUnigram.FromModelFile(path, fairseq);
                Cache[(architecture, fromTokenizerJson)] = tokenizer;
            }
            return tokenizer;
        }
    }

    private static List<Piece> Pieces(SentencePieceUnigram tokenizer, string text, int firstWord = 0)
    {
        var pieces = new List<Piece>();
        tokenizer.Tokenize(text, pieces, firstWord);
        return pieces;
    }

    private static int[] Ids(SentencePieceUnigram tokenizer, string text) => Pieces(tokenizer, text).Select(p => p.Id).ToArray();

    private static string Show(SentencePieceUnigram tokenizer, IEnumerable<long> ids) =>
        string.Join(" ", ids.Select(id => tokenizer.IdToToken((int)id) ?? $"#{id}"));

    /// <summary>Asserts <paramref name="actual"/> equals <paramref name="expected"/>, or starts with it when the fixture was truncated.</summary>
    private static void AssertIds(SentencePieceUnigram tokenizer, string what, long[] expected, int[] actual, bool truncated)
    {
        long[] compared = truncated ? actual.Take(expected.Length).Select(i => (long)i).ToArray() : actual.Select(i => (long)i).ToArray();
        Assert.True(expected.SequenceEqual(compared),
            $"{what}{(truncated ? " (prefix, truncated)" : "")}:\n expected {Show(tokenizer, expected)}\n actual   {Show(tokenizer, compared)}");
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void Single_cases_give_the_fixture_ids_between_the_special_tokens(string architecture, bool fromTokenizerJson)
    {
        var tokenizer = Load(architecture, fromTokenizerJson);
        var cases = HfFixtures.Cases(architecture).Where(c => c["kind"]!.GetValue<string>() == "single").ToList();
        Assert.NotEmpty(cases);
        foreach (var c in cases)
        {
            long[] ids = HfFixtures.Longs(c["input_ids"]);
            AssertIds(tokenizer, $"{architecture} {c["name"]}", ids[1..^1], Ids(tokenizer, c["text"]!.GetValue<string>()), c["truncated"]!.GetValue<bool>());
        }
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void Pair_cases_give_the_fixture_ids_of_both_segments(string architecture, bool fromTokenizerJson)
    {
        var tokenizer = Load(architecture, fromTokenizerJson);
        var cases = HfFixtures.Cases(architecture).Where(c => c["kind"]!.GetValue<string>() == "pair").ToList();
        Assert.NotEmpty(cases);
        foreach (var c in cases)
        {
            long[] ids = HfFixtures.Longs(c["input_ids"]);
            // XLM-R: <s> A </s></s> B </s>; DeBERTa: [CLS] A [SEP] B [SEP]. The separator (2) never occurs inside a segment.
            int firstSep = Array.IndexOf(ids, 2L);
            int secondStart = architecture == "xlm-roberta" ? firstSep + 2 : firstSep + 1;
            long[] a = ids[1..firstSep], b = ids[secondStart..^1];
            bool truncated = c["truncated"]!.GetValue<bool>();
            AssertIds(tokenizer, $"{architecture} {c["name"]} A", a, Ids(tokenizer, c["text"]!.GetValue<string>()), truncated);
            AssertIds(tokenizer, $"{architecture} {c["name"]} B", b, Ids(tokenizer, c["pair"]!.GetValue<string>()), truncated);
        }
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void Words_cases_give_the_fixture_ids_and_word_ids_when_each_word_is_tokenized_alone(string architecture, bool fromTokenizerJson)
    {
        var tokenizer = Load(architecture, fromTokenizerJson);
        var cases = HfFixtures.Cases(architecture).Where(c => c["kind"]!.GetValue<string>() == "words").ToList();
        Assert.NotEmpty(cases);
        foreach (var c in cases)
        {
            var words = c["words"]!.AsArray().Select(w => w!.GetValue<string>()).ToList();
            var pieces = new List<Piece>();
            for (int i = 0; i < words.Count; i++) tokenizer.Tokenize(words[i], pieces, firstWord: i);
            long[] ids = HfFixtures.Longs(c["input_ids"]);
            AssertIds(tokenizer, $"{architecture} {c["name"]}", ids[1..^1], pieces.Select(p => p.Id).ToArray(), truncated: false);
            long[] wordIds = c["word_ids"]!.AsArray().Where(w => w is not null).Select(w => w!.GetValue<long>()).ToArray();
            Assert.Equal(wordIds, pieces.Select(p => (long)p.Word).ToArray());
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Ids_match_huggingface_rust_on_fixture_texts_emails_and_hard_strings(string architecture)
    {
        var fromModel = Load(architecture, fromTokenizerJson: false);
        var fromJson = Load(architecture, fromTokenizerJson: true);
        var texts = new List<(string Kind, string Text)>();
        foreach (var c in HfFixtures.Cases(architecture))
        {
            if (c["text"] is JsonValue text) texts.Add(("fixture", text.GetValue<string>()));
            if (c["pair"] is JsonValue pair) texts.Add(("fixture", pair.GetValue<string>()));
            foreach (var word in c["words"]?.AsArray() ?? []) texts.Add(("fixture", word!.GetValue<string>()));
        }
        texts.AddRange(HardStrings.Select(t => ("hard", t)));
        texts.AddRange(SentencePieceOracle.SpamSample().Take(300).Select(t => ("e-mail", t)));

        var mismatches = new Dictionary<string, int>();
        var first = new List<string>();
        int tokens = 0;
        foreach (var (kind, text) in texts)
        {
            int[] rust = SentencePieceOracle.Encode(architecture, text);
            tokens += rust.Length;
            foreach (var (name, tokenizer) in new[] { ("model", fromModel), ("json", fromJson) })
            {
                int[] ours = Ids(tokenizer, text);
                if (ours.SequenceEqual(rust)) continue;
                string key = $"{name}/{kind}";
                mismatches[key] = mismatches.GetValueOrDefault(key) + 1;
                if (first.Count < 5)
                    first.Add($"{key} {Escape(text)}:\n rust {Show(tokenizer, rust.Select(i => (long)i))}\n ours {Show(tokenizer, ours.Select(i => (long)i))}");
            }
        }
        output.WriteLine($"{architecture}: {texts.Count} texts, {tokens} Rust tokens, mismatches: {(mismatches.Count == 0 ? "none" : string.Join(", ", mismatches.Select(m => $"{m.Key} {m.Value}")))}");
        Assert.True(mismatches.Count == 0, string.Join("\n", first));
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Ids_match_huggingface_rust_on_random_mixed_script_strings(string architecture)
    {
        var fromModel = Load(architecture, fromTokenizerJson: false);
        var random = new Random(20261201);
        // Blocks where normalization, grapheme clusters and unknown characters interact.
        (int From, int To)[] blocks =
        [
            ('a', 'z'), ('A', 'Z'), ('0', '9'), ('!', '/'), (' ', ' '), ('\t', '\r'), (0x00a0, 0x00ff), (0x0300, 0x036f),
            (0x0391, 0x03c9), (0x0410, 0x044f), (0x05d0, 0x05ea), (0x0627, 0x064a), (0x0900, 0x097f), (0x0e01, 0x0e5b),
            (0x1100, 0x11ff), (0xac00, 0xac40), (0x2000, 0x206f), (0x2150, 0x218b), (0x2460, 0x24ff), (0x3000, 0x303f),
            (0x3040, 0x30ff), (0x4e00, 0x4e80), (0xfb00, 0xfb06), (0xfe00, 0xfe0f), (0xff01, 0xff9f), (0x1f300, 0x1f3ff),
            (0x1f3fb, 0x1f3ff), (0x1f1e6, 0x1f1ff), (0x200d, 0x200d), (0x1d400, 0x1d433), (0x0000, 0x001f), (0x00ad, 0x00ad),
        ];
        int mismatches = 0, count = 2000;
        string? firstMismatch = null;
        for (int n = 0; n < count; n++)
        {
            var text = new System.Text.StringBuilder();
            int length = random.Next(1, 25);
            for (int k = 0; k < length; k++)
            {
                var (from, to) = blocks[random.Next(blocks.Length)];
                text.Append(char.ConvertFromUtf32(random.Next(from, to + 1)));
            }
            string s = text.ToString();
            int[] rust = SentencePieceOracle.Encode(architecture, s);
            int[] ours = Ids(fromModel, s);
            if (ours.SequenceEqual(rust)) continue;
            mismatches++;
            firstMismatch ??= $"{Escape(s)}:\n rust {Show(fromModel, rust.Select(i => (long)i))}\n ours {Show(fromModel, ours.Select(i => (long)i))}";
        }
        output.WriteLine($"{architecture}: {count} random strings, {mismatches} mismatches");
        Assert.True(mismatches == 0, $"{mismatches} of {count} differ; first: {firstMismatch}");
    }

    [SpamAssassinFact]
    public void Ids_match_huggingface_rust_on_every_spamassassin_training_text()
    {
        string path = Csv.SpamAssassinTrain()!;
        List<string> texts = Csv.ReadRecords(path).Skip(1).Select(r => r[0]).ToList();
        foreach (string architecture in new[] { "xlm-roberta", "deberta-v2" })
        {
            var tokenizer = Load(architecture, fromTokenizerJson: false);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var ours = texts.Select(t => Ids(tokenizer, t)).ToList();
            clock.Stop();
            var mismatches = texts.Where((t, i) => !ours[i].SequenceEqual(SentencePieceOracle.Encode(architecture, t))).ToList();
            long tokens = ours.Sum(ids => (long)ids.Length);
            output.WriteLine($"{architecture}: {texts.Count} texts of {path}, {tokens} tokens, {tokens / clock.Elapsed.TotalSeconds:F0} tokens/s (one thread), {mismatches.Count} mismatches");
            Assert.True(mismatches.Count == 0, $"{architecture}: {mismatches.Count} of {texts.Count} differ, first: {Escape(mismatches.FirstOrDefault() ?? "")}");
        }
    }

    [Fact]
    public void Non_special_added_tokens_in_the_vocab_are_taken_greedily_like_user_defined_pieces()
    {
        var json = (JsonObject)SentencePieceOracle.TokenizerJson("deberta-v2").DeepClone();
        var vocab = json["model"]!["vocab"]!.AsArray();
        // A piece so unlikely that the Viterbi never picks it; as a user-defined piece it wins anyway.
        vocab.Add(new JsonArray("zy", -1000.0));
        json["added_tokens"]!.AsArray().Add(new JsonObject { ["id"] = vocab.Count - 1, ["content"] = "zy", ["special"] = false });
        var plain = Load("deberta-v2", fromTokenizerJson: true);
        var withUserPiece = SentencePieceUnigram.FromTokenizerJson(json, "user-defined tokenizer.json");
        Assert.DoesNotContain(vocab.Count - 1, Ids(plain, "the lazy dog"));
        var pieces = Pieces(withUserPiece, "the lazy dog");
        Assert.Contains(pieces, p => p.Id == vocab.Count - 1 && p.Start == 6 && p.End == 8);
    }

    private static string Escape(string text) =>
        string.Concat(text.Take(120).Select(c => c < ' ' || c > '~' ? $"\\u{(int)c:x4}" : c.ToString()));

    public static readonly string[] HardStrings =
    [
        "", " ", "   ", "\t\n", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "① ② ⑩ ⅻ", "ﬁ ﬂ ﬃ ﬁne", "한국어 텍스트 안녕하세요", "한 jamo",
        "combining e\u0301 a\u0308 n\u0303 alone \u0301 x\u0301\u0302\u0303\u0304", "tab\there\ttabs\n\nnewlines\r\ncrlf",
        "non\u00a0breaking\u00a0space", "\u3000ideographic\u3000space\u2003em\u2009thin", "emoji 😀 🥰 🧑‍💻 flags 🇫🇷 👍🏽🎉 ❤️",
        "unknown 𝐀𝐁𝐂 ∑∫√ 𓀀 ꙮ ᚠᛇᚻ", "zero\u200bwidth\u200d joiner \ufeffbom \u00adsoft", "ctrl\u0001chars\u007f\u0085",
        "ｶﾀｶﾅ ｱｲｳ", "ǅ ǈ Ǉ ẞ ß", "İstanbul ΣΊΣΥΦΟΣ Straße", "...!!!???", "a  b   c    d", "  leading and trailing  ",
        "\u2028line\u2029para", "\ue000private\uf8ff", "x\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308",
        "العربية עברית ไทย हिन्दी", "我爱自然语言处理 東京は日本の首都です", "“quotes” ‘single’ «guillemets» — – …",
        "Ⅻ ㎏ ㈱ ™ ½ ¼ ² ³", "x²+y²=z²", "e-mail john.doe+test@example.org http://a.b/c?d=e",
        // Blanks the charsmap keeps: Rust's Strip removes U+0085 at the ends (sentencepiece itself would give an unknown piece).
        " a", "\u0085lead", "trail\u0085", "\u00a0nbsp\u00a0", "\u3000\u3000ideo", "a \u0085 b", "▁already ▁meta▁space",
    ];

    [Theory]
    [MemberData(nameof(Sources))]
    public void Hello_world_pieces_point_at_their_characters(string architecture, bool fromTokenizerJson)
    {
        var tokenizer = Load(architecture, fromTokenizerJson);
        const string text = "Hello world";
        var pieces = Pieces(tokenizer, text);
        Assert.Equal("▁Hello▁world", string.Concat(pieces.Select(p => tokenizer.IdToToken(p.Id))));
        foreach (var piece in pieces)
        {
            string token = tokenizer.IdToToken(piece.Id)!;
            // ▁ stands for the space before "world"; the first word's ▁ has no character and shares the first letter's span.
            string covered = text[piece.Start..piece.End].Replace(' ', '▁');
            Assert.True(covered == token || (piece.Start == 0 && "▁" + covered == token) || (token == "▁" && covered == "H"),
                $"{token} covers '{covered}' [{piece.Start}, {piece.End})");
        }
        Assert.Equal(pieces.Select(p => p.Start < 5 ? 0 : 1), pieces.Select(p => p.Word));
    }

    [Fact]
    public void Offsets_map_through_normalization_to_the_original_characters()
    {
        var tokenizer = Load("xlm-roberta", fromTokenizerJson: false);
        // Full-width letters become ASCII, the tab and the run of spaces collapse into one ▁.
        const string text = "ｆｕｌｌ\t  Zürich";
        var pieces = Pieces(tokenizer, text);
        Assert.Equal(0, pieces[0].Start);
        Assert.Equal(text.Length, pieces[^1].End);
        Assert.All(pieces.Zip(pieces.Skip(1)), p => Assert.True(p.First.End <= p.Second.Start || p.First.Start == p.Second.Start));
        Assert.Equal([0, 1], pieces.Select(p => p.Word).Distinct().ToArray());
        Piece zurichStart = pieces.First(p => p.Word == 1);
        Assert.Equal("\t  Z", text[zurichStart.Start..(text.IndexOf('Z') + 1)]);
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void Empty_and_blank_texts_give_no_pieces(string architecture, bool fromTokenizerJson)
    {
        var tokenizer = Load(architecture, fromTokenizerJson);
        Assert.Empty(Pieces(tokenizer, ""));
        Assert.Empty(Pieces(tokenizer, "  \t\n "));
    }

    [Fact]
    public void Runs_of_unknown_characters_become_one_unknown_piece()
    {
        var tokenizer = Load("deberta-v2", fromTokenizerJson: false);
        var pieces = Pieces(tokenizer, "我爱自");
        Assert.Equal(["▁", "我", "[UNK]"], pieces.Select(p => tokenizer.IdToToken(p.Id)!).ToArray());
        Assert.Equal((1, 3), (pieces[2].Start, pieces[2].End));
    }

    [Fact]
    public void Ids_follow_the_fairseq_layout_for_xlm_roberta_and_the_piece_ids_for_deberta()
    {
        var xlmr = Load("xlm-roberta", fromTokenizerJson: false);
        Assert.Equal([0, 1, 2, 3], new[] { "<s>", "<pad>", "</s>", "<unk>" }.Select(t => xlmr.TokenToId(t)!.Value).ToArray());
        Assert.Equal(3, xlmr.UnkId);
        Assert.Equal(1001, xlmr.VocabSize);
        Assert.Null(xlmr.IdToToken(1001));
        var deberta = Load("deberta-v2", fromTokenizerJson: false);
        Assert.Equal([0, 1, 2, 3], new[] { "[PAD]", "[CLS]", "[SEP]", "[UNK]" }.Select(t => deberta.TokenToId(t)!.Value).ToArray());
        Assert.Equal(3, deberta.UnkId);
        Assert.Equal(1000, deberta.VocabSize);
        Assert.Null(deberta.TokenToId("not a piece"));
    }

    [Fact]
    public void Tokenize_is_thread_safe()
    {
        var tokenizer = Load("xlm-roberta", fromTokenizerJson: false);
        var texts = SentencePieceOracle.SpamSample().Take(64).ToList();
        var sequential = texts.Select(t => Ids(tokenizer, t)).ToList();
        var parallel = new int[texts.Count][];
        Parallel.For(0, texts.Count, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = Ids(tokenizer, texts[i]));
        for (int i = 0; i < texts.Count; i++) Assert.Equal(sequential[i], parallel[i]);
    }

    [Fact]
    public void Save_copies_the_model_file_and_refuses_for_tokenizer_json()
    {
        var (path, _) = SentencePieceOracle.ModelFile("deberta-v2");
        string directory = Directory.CreateTempSubdirectory("sharptune-spm-").FullName;
        try
        {
            Load("deberta-v2", fromTokenizerJson: false).Save(directory);
            Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(Path.Combine(directory, "spm.model")));
            var e = Assert.Throws<SharpTuneException>(() => Load("deberta-v2", fromTokenizerJson: true).Save(directory));
            Assert.Contains("tokenizer.json", e.Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Corrupt_model_files_throw_errors_naming_the_file()
    {
        var (path, _) = SentencePieceOracle.ModelFile("xlm-roberta");
        byte[] bytes = File.ReadAllBytes(path);
        string directory = Directory.CreateTempSubdirectory("sharptune-spm-").FullName;
        try
        {
            var random = new Random(1234);
            byte[] noise = new byte[4096];
            random.NextBytes(noise);
            var files = new Dictionary<string, byte[]>
            {
                ["truncated.model"] = bytes[..(bytes.Length / 2)],
                ["truncated-early.model"] = bytes[..37],
                ["random.model"] = noise,
                ["empty.model"] = [],
            };
            foreach (var (name, content) in files)
            {
                string file = Path.Combine(directory, name);
                File.WriteAllBytes(file, content);
                var e = Assert.ThrowsAny<SharpTuneException>(() => SentencePieceUnigram.FromModelFile(file, fairseqIds: true));
                Assert.Contains(file, e.Message);
            }
            string missing = Path.Combine(directory, "missing.model");
            Assert.Contains(missing, Assert.Throws<SharpTuneException>(() => SentencePieceUnigram.FromModelFile(missing, false)).Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void A_corrupt_charsmap_throws_an_error_naming_the_source_not_an_index_error()
    {
        var json = (JsonObject)SentencePieceOracle.TokenizerJson("deberta-v2").DeepClone();
        // A header announcing 8 bytes of trie whose units send the lookup far outside the array.
        byte[] charsMap = [8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, (byte)'a', 0];
        json["normalizer"]!["normalizers"]![1]!["precompiled_charsmap"] = Convert.ToBase64String(charsMap);
        var e = Assert.Throws<SharpTuneException>(() =>
        {
            var tokenizer = SentencePieceUnigram.FromTokenizerJson(json, "broken/tokenizer.json");
            tokenizer.Tokenize("hello", []);
        });
        Assert.Contains("broken/tokenizer.json", e.Message);

        json["normalizer"]!["normalizers"]![1]!["precompiled_charsmap"] = Convert.ToBase64String([200, 0, 0, 0, 1, 2]);
        Assert.Contains("broken/tokenizer.json", Assert.Throws<SharpTuneException>(() => SentencePieceUnigram.FromTokenizerJson(json, "broken/tokenizer.json")).Message);
    }

    [Fact]
    public void A_tokenizer_json_that_is_not_unigram_is_rejected_with_the_key()
    {
        var json = (JsonObject)SentencePieceOracle.TokenizerJson("deberta-v2").DeepClone();
        json["model"]!["type"] = "BPE";
        var e = Assert.Throws<SharpTuneException>(() => SentencePieceUnigram.FromTokenizerJson(json, "x/tokenizer.json"));
        Assert.Contains("model.type", e.Message);
    }
}
