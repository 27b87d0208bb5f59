using System.Text.Json.Nodes;
using SharpTune.Tokenization;
using TorchSharp;

namespace SharpTune.Tests.Tokenization;

/// <summary>Expected ids are read off the MiniLM (bert-base-uncased) vocab.txt by hand: line number = id.</summary>
public class BertTokenizerTests
{
    private const int Pad = 0, Unk = 100, Cls = 101, Sep = 102, Mask = 103;
    private static BertTokenizer Tokenizer => MiniLMVocab.Tokenizer;

    private static int[] Ids(string text) => Tokenizer.TokenizeToIds(text);

    [Fact]
    public void Special_token_ids_and_vocab_size_come_from_the_vocab()
    {
        Assert.Equal(30522, Tokenizer.VocabSize);
        Assert.Equal((Pad, Unk, Cls, Sep, (int?)Mask), (Tokenizer.PadTokenId, Tokenizer.UnkTokenId, Tokenizer.ClsTokenId, Tokenizer.SepTokenId, Tokenizer.MaskTokenId));
        Assert.Equal(new[] { 7592, Unk }, Tokenizer.ConvertTokensToIds(["hello", "no-such-token"]));
    }

    [Fact]
    public void Text_is_lowercased_and_wrapped_in_cls_and_sep()
    {
        Assert.Equal(new long[] { Cls, 7592, 2088, Sep }, Tokenizer.Encode("Hello WORLD").InputIds);
        Assert.Equal(["hello", "world"], Tokenizer.Tokenize("HeLLo   wOrLd"));
    }

    [Fact]
    public void Accents_are_stripped_when_lowercasing()
    {
        Assert.Equal(new[] { 7668, 7668, 7668 }, Ids("café Café CAFÉ"));
        Assert.Equal(new[] { 19169 }, Ids("Über"));
        Assert.Equal(new[] { 7668 }, Ids("cafe\u0301")); // decomposed accent: the combining mark is dropped
    }

    [Fact]
    public void Accents_are_kept_when_strip_accents_is_false()
    {
        var keep = BertTokenizer.FromVocabFile(MiniLMVocab.VocabPath, new BertTokenizerOptions { StripAccents = false });
        // caf + ##é: there is no ##é, so the whole word is unknown.
        Assert.Equal(new[] { Unk, 7668 }, keep.TokenizeToIds("café cafe"));
    }

    [Fact]
    public void Uppercase_is_kept_when_lowercasing_is_off()
    {
        var cased = BertTokenizer.FromVocabFile(MiniLMVocab.VocabPath, new BertTokenizerOptions { LowerCase = false });
        Assert.Equal(new[] { Unk, 7592 }, cased.TokenizeToIds("Hello hello")); // the uncased vocab has no "H"
    }

    [Fact]
    public void Every_ascii_punctuation_and_symbol_character_is_its_own_token()
    {
        int[] expected = [999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
            1024, 1025, 1026, 1027, 1028, 1029, 1030, 1031, 1032, 1033, 1034, 1035, 1036, 1063, 1064, 1065, 1066];
        Assert.Equal(expected, Ids("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"));
        // Symbols that Microsoft.ML.Tokenizers drops are split off, between letters too.
        Assert.Equal(new[] { 1037, 1002, 1038, 1027, 1039, 1009, 1037, 1026, 1038, 1028, 1039, 1034, 1037, 1064, 1038, 1066, 1039, 1036, 1037 },
            Ids("a$b=c+a<b>c^a|b~c`a"));
    }

    [Fact]
    public void Cjk_ideographs_are_split_into_single_characters()
    {
        Assert.Equal(new[] { 7632, 1746, 1799, 2045 }, Ids("hi中国there"));
        Assert.Equal(new[] { 1746, 1861 }, Ids("中文"));
    }

    [Fact]
    public void Control_format_and_private_use_characters_are_removed_and_whitespace_splits()
    {
        Assert.Equal(new[] { 7592 }, Ids("he\u0000l\u0007l\u200bo\uE000\uFFFD"));
        Assert.Equal(new[] { 7632, 2045, 2129, 2024, 2017 }, Ids("hi\tthere\nhow\r\nare\u00a0you"));
    }

    [Fact]
    public void Unknown_words_become_unk()
    {
        Assert.Equal(new[] { 7592, Unk, 2088 }, Ids("hello ☃ world"));
    }

    [Fact]
    public void Words_longer_than_100_characters_become_unk()
    {
        Assert.Equal(new long[] { Cls, Unk, Sep }, Tokenizer.Encode(new string('a', 101)).InputIds);
        // 100 characters still go through WordPiece: aaa + 48 × ##aa + ##a.
        int[] expected = [13360, .. Enumerable.Repeat(11057, 48), 2050];
        Assert.Equal(expected, Ids(new string('a', 100)));
    }

    [Fact]
    public void Words_missing_from_the_vocab_split_into_continuation_pieces()
    {
        Assert.Equal(["token", "##ization"], Tokenizer.Tokenize("tokenization"));
        Assert.Equal(new[] { 19204, 3989 }, Ids("tokenization"));
        Assert.Equal(new[] { 1060, 2100, 2480 }, Ids("xyz"));
    }

    [Fact]
    public void Literal_special_tokens_in_text_become_those_tokens()
    {
        Assert.Equal(new[] { Cls, 7592, Mask, 2088, Sep, Pad, Unk }, Ids("[CLS] hello [MASK] world [SEP][PAD][UNK]"));
        Assert.Equal(new[] { 1060, Sep, 1061 }, Ids("x[SEP]y"));
        Assert.DoesNotContain(Cls, Ids("[cls]")); // matched case-sensitively, before lowercasing
    }

    [Fact]
    public void Empty_text_encodes_to_cls_sep()
    {
        EncodedText encoded = Tokenizer.Encode("");
        Assert.Equal(new long[] { Cls, Sep }, encoded.InputIds);
        Assert.Equal(2, encoded.Length);
        Assert.Empty(Ids(" \t\n"));
    }

    [Fact]
    public void Pairs_get_token_type_one_for_the_second_text()
    {
        EncodedText encoded = Tokenizer.Encode("hello", "world");
        Assert.Equal(new long[] { Cls, 7592, Sep, 2088, Sep }, encoded.InputIds);
        Assert.Equal(new long[] { 0, 0, 0, 1, 1 }, encoded.TokenTypeIds);
        Assert.False(encoded.Truncated);
    }

    [Fact]
    public void Single_text_is_truncated_to_max_length_and_keeps_its_full_length()
    {
        EncodedText encoded = Tokenizer.Encode("one two three", maxLength: 4);
        Assert.Equal(new long[] { Cls, 2028, 2048, Sep }, encoded.InputIds);
        Assert.Equal(5, encoded.Length);
        Assert.True(encoded.Truncated);
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.Encode("one", "two", maxLength: 2));
    }

    [Fact]
    public void Pairs_are_truncated_longest_first()
    {
        // Room for 5: the short pair (2) stays whole, the long text keeps 3.
        Assert.Equal(new long[] { Cls, 2028, 2048, 2093, Sep, 7592, 2088, Sep },
            Tokenizer.Encode("one two three four five six", "hello world", maxLength: 8).InputIds);
        // Both too long: half each, the odd token to the longer side…
        Assert.Equal(new long[] { Cls, 2028, 2048, Sep, 7592, 2088, 7632, Sep },
            Tokenizer.Encode("one two three four", "hello world hi there how are", maxLength: 8).InputIds);
        Assert.Equal(new long[] { Cls, 2028, 2048, 2093, Sep, 7592, 2088, Sep },
            Tokenizer.Encode("one two three four five six", "hello world hi there", maxLength: 8).InputIds);
        // …and to the pair on a tie (HF tokenizers; the slow Python tokenizer gives it to the first text).
        EncodedText tie = Tokenizer.Encode("one two three four", "hello world hi there", maxLength: 8);
        Assert.Equal(new long[] { Cls, 2028, 2048, Sep, 7592, 2088, 7632, Sep }, tie.InputIds);
        Assert.Equal(new long[] { 0, 0, 0, 0, 1, 1, 1, 1 }, tie.TokenTypeIds);
        Assert.Equal(11, tie.Length);
    }

    [Fact]
    public void Batch_is_padded_to_the_longest_row_with_an_attention_mask()
    {
        EncodedBatch batch = Tokenizer.EncodeBatch(["hello world", "hi"]);
        Assert.Equal((2, 4), (batch.BatchSize, batch.SequenceLength));
        Assert.Equal(new long[] { Cls, 7592, 2088, Sep, Cls, 7632, Sep, Pad }, batch.InputIds);
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 1, 1, 0 }, batch.AttentionMask);
        Assert.Equal(new long[8], batch.TokenTypeIds);
        Assert.Equal(new[] { 4, 3 }, batch.Lengths);
    }

    [Fact]
    public void Batch_of_pairs_is_padded_to_max_length()
    {
        EncodedBatch batch = Tokenizer.EncodeBatch(["hello", "hi"], ["world", null], maxLength: 6, padding: PaddingMode.MaxLength);
        Assert.Equal(6, batch.SequenceLength);
        Assert.Equal(new long[] { Cls, 7592, Sep, 2088, Sep, Pad, Cls, 7632, Sep, Pad, Pad, Pad }, batch.InputIds);
        Assert.Equal(new long[] { 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0 }, batch.TokenTypeIds);
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0 }, batch.AttentionMask);
    }

    [Fact]
    public void Large_batches_encode_in_parallel_to_the_same_ids_as_one_by_one()
    {
        string[] texts = Enumerable.Range(0, 100).Select(i => string.Join(' ', Enumerable.Repeat("hello world", i % 7))).ToArray();
        EncodedBatch batch = Tokenizer.EncodeBatch(texts, maxLength: 10);
        for (int row = 0; row < texts.Length; row++)
        {
            long[] one = Tokenizer.Encode(texts[row], maxLength: 10).InputIds;
            Assert.Equal(one, batch.InputIds.AsSpan(row * batch.SequenceLength, one.Length).ToArray());
        }
    }

    [Fact]
    public void Batch_converts_to_int64_tensors_of_batch_by_length()
    {
        EncodedBatch batch = Tokenizer.EncodeBatch(["hello world", "hi"]);
        var (ids, types, mask) = batch.ToTensors();
        using (ids) using (types) using (mask)
        {
            Assert.Equal(new long[] { 2, 4 }, ids.shape);
            Assert.Equal(torch.ScalarType.Int64, mask.dtype);
            Assert.Equal(batch.InputIds, ids.data<long>().ToArray());
            Assert.Equal(batch.AttentionMask, mask.data<long>().ToArray());
            Assert.Equal(batch.TokenTypeIds, types.data<long>().ToArray());
        }
    }

    [Fact]
    public void Decode_joins_continuation_pieces_and_skips_special_tokens()
    {
        Assert.Equal("tokenization is fine", Tokenizer.Decode(Tokenizer.Encode("Tokenization is fine").InputIds));
    }

    [Fact]
    public void Save_writes_files_that_load_back_to_the_same_tokenizer()
    {
        string directory = MiniLMVocab.NewTempDirectory();
        var options = new BertTokenizerOptions { StripAccents = false, ModelMaxLength = 256 };
        BertTokenizer.FromVocabFile(MiniLMVocab.VocabPath, options).Save(directory);

        string vocab = File.ReadAllText(Path.Combine(directory, "vocab.txt"));
        Assert.DoesNotContain('\r', vocab);
        Assert.StartsWith("[PAD]\n", vocab);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "tokenizer_config.json")))!;
        Assert.Equal("BertTokenizer", (string?)config["tokenizer_class"]);
        Assert.False((bool)config["strip_accents"]!);
        Assert.Equal("[MASK]", (string?)JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "special_tokens_map.json")))!["mask_token"]);

        BertTokenizer loaded = BertTokenizer.FromDirectory(directory);
        Assert.Equal(options, loaded.Options with { AdditionalSpecialTokens = options.AdditionalSpecialTokens });
        Assert.Equal(new[] { Unk, 7668 }, loaded.TokenizeToIds("café cafe"));
    }

    [Fact]
    public void Directory_reads_tokenizer_config_and_special_token_objects()
    {
        string directory = MiniLMVocab.NewTempDirectory();
        File.Copy(MiniLMVocab.VocabPath, Path.Combine(directory, "vocab.txt"));
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"),
            """{"do_lower_case": false, "model_max_length": 1000000000000000019884624838656, "unk_token": {"content": "[UNK]", "__type": "AddedToken"}}""");
        BertTokenizer tokenizer = BertTokenizer.FromDirectory(directory);
        Assert.False(tokenizer.Options.LowerCase);
        Assert.Equal(int.MaxValue, tokenizer.Options.ModelMaxLength);
        Assert.Equal(new[] { Unk, 7592 }, tokenizer.TokenizeToIds("Hello hello"));
    }

    [Fact]
    public void Directory_without_vocab_txt_reads_the_vocab_and_normalizer_of_tokenizer_json()
    {
        string directory = MiniLMVocab.NewTempDirectory();
        var vocab = new JsonObject();
        string[] lines = File.ReadAllLines(MiniLMVocab.VocabPath);
        for (int id = 0; id < lines.Length; id++) vocab[lines[id]] = id;
        var json = new JsonObject
        {
            ["normalizer"] = new JsonObject { ["type"] = "BertNormalizer", ["clean_text"] = true, ["handle_chinese_chars"] = false, ["strip_accents"] = null, ["lowercase"] = true },
            ["model"] = new JsonObject { ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["continuing_subword_prefix"] = "##", ["max_input_chars_per_word"] = 100, ["vocab"] = vocab },
        };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), json.ToJsonString());
        BertTokenizer tokenizer = BertTokenizer.FromDirectory(directory);
        Assert.Equal(30522, tokenizer.VocabSize);
        Assert.False(tokenizer.Options.TokenizeChineseChars);
        Assert.Equal(new[] { 7592, 7668 }, tokenizer.TokenizeToIds("Hello café"));
        Assert.NotEqual(new[] { 1746, 1861 }, tokenizer.TokenizeToIds("中文")); // one word now, not two characters
    }

    [Fact]
    public void Missing_vocab_file_is_named_in_the_error()
    {
        string directory = MiniLMVocab.NewTempDirectory();
        var error = Assert.Throws<SharpTuneException>(() => BertTokenizer.FromDirectory(directory));
        Assert.Contains(Path.Combine(directory, "vocab.txt"), error.Message);
        string path = Path.Combine(directory, "nope.txt");
        Assert.Contains(path, Assert.Throws<SharpTuneException>(() => BertTokenizer.FromVocabFile(path)).Message);
    }

    [Fact]
    public void Empty_vocab_file_is_rejected_naming_the_file()
    {
        string path = Path.Combine(MiniLMVocab.NewTempDirectory(), "vocab.txt");
        File.WriteAllText(path, "");
        var error = Assert.Throws<SharpTuneException>(() => BertTokenizer.FromVocabFile(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("empty", error.Message);
    }

    [Theory]
    [InlineData("[UNK]", "unk_token")]
    [InlineData("[CLS]", "cls_token")]
    [InlineData("[SEP]", "sep_token")]
    [InlineData("[PAD]", "pad_token")]
    public void Vocab_lacking_a_required_special_token_is_rejected_naming_file_and_token(string token, string field)
    {
        string path = Path.Combine(MiniLMVocab.NewTempDirectory(), "vocab.txt");
        File.WriteAllLines(path, new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello" }.Where(t => t != token));
        var error = Assert.Throws<SharpTuneException>(() => BertTokenizer.FromVocabFile(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(field, error.Message);
        Assert.Contains(token, error.Message);
    }

    [Fact]
    public void Malformed_tokenizer_config_is_named_in_the_error()
    {
        string directory = MiniLMVocab.NewTempDirectory();
        File.Copy(MiniLMVocab.VocabPath, Path.Combine(directory, "vocab.txt"));
        string config = Path.Combine(directory, "tokenizer_config.json");
        File.WriteAllText(config, """{"do_lower_case": "yes"}""");
        var error = Assert.Throws<SharpTuneException>(() => BertTokenizer.FromDirectory(directory));
        Assert.Contains(config, error.Message);
        Assert.Contains("do_lower_case", error.Message);
    }
}
