using System.Text;
using SharpTune.Data;

namespace SharpTune.Tests.Data;

public sealed class TokenDatasetTests : IDisposable
{
    private readonly TempFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static readonly string[] UniversalTags = [".", "ADJ", "ADP", "ADV", "CONJ", "DET", "NOUN", "NUM", "PRON", "PRT", "VERB", "X"];

    /// <summary>data/brown-press-pos-sample at the repository root, found by walking up from the test output folder.</summary>
    internal static string BrownSample
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "data", "brown-press-pos-sample");
                if (Directory.Exists(candidate)) return candidate;
            }
            throw new DirectoryNotFoundException($"data/brown-press-pos-sample not found above {AppContext.BaseDirectory}");
        }
    }

    [Fact]
    public void Conll_reads_the_last_column_as_the_tag_and_a_blank_line_between_sentences()
    {
        string path = _files.Write("train.conll",
            "EU\tNNP\tB-NP\tB-ORG\n" +
            "rejects\tVBZ\tB-VP\tO\n" +
            "\n" +
            "Peter\tNNP\tB-NP\tB-PER\n" +
            "Blackburn\tNNP\tI-NP\tI-PER\n");
        LoadedTokenData data = TokenDataset.Load(path);
        Assert.Equal(TokenDataFormat.Conll, data.Format);
        Assert.Equal(2, data.Sentences.Count);
        Assert.Equal(["EU", "rejects"], data.Sentences[0].Tokens);
        Assert.Equal(["B-ORG", "O"], data.Sentences[0].Tags);
        Assert.Equal(["B-PER", "I-PER"], data.Sentences[1].Tags);
        Assert.Equal([1, 4], data.Sentences.Select(s => s.Line));
        Assert.Equal(0, data.SkippedSentences);
    }

    [Theory]
    [InlineData(1, new[] { "NNP", "VBZ" })]
    [InlineData(2, new[] { "B-NP", "B-VP" })]
    [InlineData(-1, new[] { "B-ORG", "O" })]
    [InlineData(-3, new[] { "NNP", "VBZ" })]
    public void Conll_tag_column_counts_from_the_start_or_from_the_end(int tagColumn, string[] expected)
    {
        string path = _files.Write("t.conll", "EU\tNNP\tB-NP\tB-ORG\nrejects\tVBZ\tB-VP\tO\n");
        TaggedSentence sentence = Assert.Single(TokenDataset.Load(path, new TokenDataOptions { TagColumn = tagColumn }).Sentences);
        Assert.Equal(expected, sentence.Tags);
        Assert.Equal(["EU", "rejects"], sentence.Tokens);
    }

    [Fact]
    public void Conll_token_column_can_be_moved()
    {
        string path = _files.Write("t.tsv", "1\tEU\tB-ORG\n2\trejects\tO\n");
        TaggedSentence sentence = Assert.Single(TokenDataset.Load(path, new TokenDataOptions { TokenColumn = 1 }).Sentences);
        Assert.Equal(["EU", "rejects"], sentence.Tokens);
        Assert.Equal(["B-ORG", "O"], sentence.Tags);
    }

    [Fact]
    public void Conll_docstart_lines_and_runs_of_blank_lines_are_one_boundary_and_the_final_blank_line_is_optional()
    {
        string path = _files.Write("t.conll",
            "-DOCSTART- -X- -X- O\n" +
            "\n" +
            "EU B-ORG\n" +
            "rejects O\n" +
            "\n\n   \n" +
            "-DOCSTART- -X- -X- O\n" +
            "\n" +
            "Peter B-PER\n" +
            "\n" +
            "\n" +
            "Blackburn I-PER");
        LoadedTokenData data = TokenDataset.Load(path);
        Assert.Equal([["EU", "rejects"], ["Peter"], ["Blackburn"]], data.Sentences.Select(s => s.Tokens));
        Assert.Equal([3, 10, 13], data.Sentences.Select(s => s.Line));
        Assert.DoesNotContain(data.Sentences, s => s.Tokens.Contains("-DOCSTART-"));
    }

    [Fact]
    public void Conll_with_crlf_and_bom_reads_like_lf_without_bom()
    {
        string lf = _files.Write("lf.conll", "EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n");
        string crlf = _files.Write("crlf.conll", "EU\tB-ORG\r\nrejects\tO\r\n\r\nPeter\tB-PER\r\n", bom: true);
        Assert.Equal(new byte[] { 0xEF, 0xBB, 0xBF }, File.ReadAllBytes(crlf)[..3]);
        LoadedTokenData a = TokenDataset.Load(lf), b = TokenDataset.Load(crlf);
        Assert.Equal(a.Sentences.Select(s => s.Tokens), b.Sentences.Select(s => s.Tokens));
        Assert.Equal(a.Sentences.Select(s => s.Tags), b.Sentences.Select(s => s.Tags));
        Assert.Equal(a.Sentences.Select(s => s.Line), b.Sentences.Select(s => s.Line));
        Assert.Equal("EU", b.Sentences[0].Tokens[0]);
        Assert.Equal("O", b.Sentences[0].Tags[1]);
    }

    [Fact]
    public void Conll_with_tabs_keeps_spaces_inside_tokens_and_without_tabs_splits_on_runs_of_spaces()
    {
        string tabbed = _files.Write("tab.tsv", "New York\tB-LOC\n");
        Assert.Equal(["New York"], TokenDataset.Load(tabbed).Sentences[0].Tokens);

        string spaced = _files.Write("space.txt", "EU   NNP  B-ORG\n  rejects VBZ O\n");
        TaggedSentence sentence = Assert.Single(TokenDataset.Load(spaced).Sentences);
        Assert.Equal(["EU", "rejects"], sentence.Tokens);
        Assert.Equal(["B-ORG", "O"], sentence.Tags);
    }

    [Fact]
    public void A_txt_looks_tagged_when_its_lines_have_the_same_columns_and_plain_text_lines_do_not()
    {
        // CoNLL-2003 as distributed (train.txt): four space-separated columns, -DOCSTART- and blank lines.
        Assert.True(TokenDataset.LooksTagged(_files.Write("conll2003.txt", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n")));
        Assert.True(TokenDataset.LooksTagged(_files.Write("tabs.txt", "New York\tB-LOC\nis\tO\n\nhere\tO\n")));
        // One text per line with an empty line between: sentences, not token rows.
        Assert.False(TokenDataset.LooksTagged(_files.Write("texts.txt", "the cat sat on the mat\nhello there\n\na third text\n")));
        Assert.False(TokenDataset.LooksTagged(_files.Write("words.txt", "hello\nworld\n\nagain\n")));
        // .tsv keeps its rule: a blank line and no header.
        Assert.True(TokenDataset.LooksTagged(_files.Write("ragged.tsv", "EU\tNNP\tB-ORG\nrejects\tO\n\n")));
    }

    [Fact]
    public void Conll_line_without_a_tag_column_is_an_error_naming_file_and_line()
    {
        string path = _files.Write("t.conll", "EU\tB-ORG\nrejects\tO\n\nPeter\n");
        var error = Assert.Throws<SharpTuneException>(() => TokenDataset.Load(path));
        Assert.StartsWith($"{path}:4: no tag: the line has 1 column (tab-separated)", error.Message);
        Assert.Contains("the last column", error.Message);

        var fromStart = Assert.Throws<SharpTuneException>(() => TokenDataset.Load(path, new TokenDataOptions { TagColumn = 3 }));
        Assert.StartsWith($"{path}:1: no tag: the line has 2 columns", fromStart.Message);
        Assert.Contains("column 3 (0-based)", fromStart.Message);
    }

    [Fact]
    public void Conll_empty_token_is_an_error_naming_file_and_line()
    {
        string path = _files.Write("t.tsv", "EU\tB-ORG\n\tO\n");
        Assert.StartsWith($"{path}:2: empty token in column 0", Assert.Throws<SharpTuneException>(() => TokenDataset.Load(path)).Message);
    }

    [Fact]
    public void Skip_bad_rows_drops_each_bad_sentence_whole_and_counts_it()
    {
        string path = _files.Write("t.conll",
            "EU\tB-ORG\n" +
            "rejects\n" +          // line 2: no tag → sentence 1 skipped
            "German\tB-MISC\n" +
            "\n" +
            "Peter\tB-PER\n" +
            "\n" +
            "\tO\n" +              // line 7: empty token → sentence 3 skipped
            "\n" +
            "Blackburn\tI-PER\n");
        LoadedTokenData data = TokenDataset.Load(path, new TokenDataOptions { SkipBadRows = true });
        Assert.Equal([["Peter"], ["Blackburn"]], data.Sentences.Select(s => s.Tokens));
        Assert.Equal(2, data.SkippedSentences);
        Assert.Equal(2, data.SkipReasons.Count);
        Assert.StartsWith($"{path}:2: no tag", data.SkipReasons[0]);
        Assert.StartsWith($"{path}:7: empty token", data.SkipReasons[1]);
    }

    [Fact]
    public void Prediction_input_without_tags_loads_when_tags_are_not_required()
    {
        string path = _files.Write("predict.txt", "EU\nrejects\n\nPeter\n");
        var options = new TokenDataOptions { RequireTags = false };
        LoadedTokenData data = TokenDataset.Load(path, options);
        Assert.Equal([["EU", "rejects"], ["Peter"]], data.Sentences.Select(s => s.Tokens));
        Assert.All(data.Sentences, s => Assert.Empty(s.Tags));

        string partly = _files.Write("partly.tsv", "EU\tB-ORG\nrejects\n");
        Assert.StartsWith($"{partly}:2: no tag on this line", Assert.Throws<SharpTuneException>(() => TokenDataset.Load(partly, options)).Message);

        string jsonl = _files.Write("predict.jsonl", "{\"tokens\": [\"EU\", \"rejects\"]}\n");
        Assert.Empty(Assert.Single(TokenDataset.Load(jsonl, options).Sentences).Tags);
        Assert.Contains("missing key 'tags'", Assert.Throws<SharpTuneException>(() => TokenDataset.Load(jsonl)).Message);
    }

    [Fact]
    public void Invalid_utf8_is_an_error_naming_file_and_line()
    {
        byte[] bytes = [.. Encoding.UTF8.GetBytes("EU\tB-ORG\n\ncaf"), 0xC3, 0x28, .. Encoding.UTF8.GetBytes("\tO\n")];
        string path = _files.WriteBytes("bad.conll", bytes);
        var error = Assert.Throws<SharpTuneException>(() => TokenDataset.Load(path));
        Assert.StartsWith($"{path}:3: not valid UTF-8", error.Message);

        string json = _files.WriteBytes("bad.jsonl", [.. Encoding.UTF8.GetBytes("{\"tokens\": [\"caf"), 0xFF, .. Encoding.UTF8.GetBytes("\"], \"tags\": [\"O\"]}\n")]);
        Assert.StartsWith($"{json}:1: not valid UTF-8", Assert.Throws<SharpTuneException>(() => TokenDataset.Load(json)).Message);
    }

    [Fact]
    public void Jsonl_reads_tokens_and_tags_under_their_usual_keys_and_ignores_blank_lines()
    {
        string path = _files.Write("t.jsonl",
            "{\"tokens\": [\"EU\", \"rejects\"], \"tags\": [\"B-ORG\", \"O\"]}\r\n" +
            "\r\n" +
            "{\"words\": [\"Peter\"], \"ner_tags\": [\"B-PER\"]}\n" +
            "{\"tokens\": [\"runs\"], \"pos_tags\": [\"VERB\"]}",
            bom: true);
        LoadedTokenData data = TokenDataset.Load(path);
        Assert.Equal(TokenDataFormat.Jsonl, data.Format);
        Assert.Equal([["EU", "rejects"], ["Peter"], ["runs"]], data.Sentences.Select(s => s.Tokens));
        Assert.Equal([["B-ORG", "O"], ["B-PER"], ["VERB"]], data.Sentences.Select(s => s.Tags));
        Assert.Equal([1, 3, 4], data.Sentences.Select(s => s.Line));
    }

    [Fact]
    public void Jsonl_token_and_tag_counts_that_differ_are_an_error_naming_file_line_and_both_counts()
    {
        string path = _files.Write("t.jsonl",
            "{\"tokens\": [\"EU\"], \"tags\": [\"B-ORG\"]}\n" +
            "{\"tokens\": [\"EU\", \"rejects\", \"German\"], \"tags\": [\"B-ORG\", \"O\"]}\n");
        var error = Assert.Throws<SharpTuneException>(() => TokenDataset.Load(path));
        Assert.Equal($"{path}:2: 'tokens' has 3 items but 'tags' has 2; give one tag per token.", error.Message);
    }

    [Fact]
    public void Jsonl_tags_must_be_strings_and_bad_lines_can_be_skipped()
    {
        string path = _files.Write("t.jsonl",
            "{\"tokens\": [\"EU\"], \"ner_tags\": [3]}\n" +
            "not json\n" +
            "{\"tokens\": [\"Peter\"], \"tags\": [\"B-PER\"]}\n");
        var error = Assert.Throws<SharpTuneException>(() => TokenDataset.Load(path));
        Assert.StartsWith($"{path}:1: key 'ner_tags': tag 1 is Number 3, not a string (tag ids?", error.Message);

        LoadedTokenData data = TokenDataset.Load(path, new TokenDataOptions { SkipBadRows = true });
        Assert.Equal([["Peter"]], data.Sentences.Select(s => s.Tokens));
        Assert.Equal(2, data.SkippedSentences);
        Assert.StartsWith($"{path}:2: bad JSON", data.SkipReasons[1]);
    }

    [Fact]
    public void Format_comes_from_the_extension_or_the_options()
    {
        Assert.Equal(TokenDataFormat.Conll, TokenDataset.FormatOf("a.iob"));
        Assert.Equal(TokenDataFormat.Conll, TokenDataset.FormatOf("a.BIO"));
        Assert.Equal(TokenDataFormat.Jsonl, TokenDataset.FormatOf("a.json"));
        Assert.Contains("'.csv'", Assert.Throws<SharpTuneException>(() => TokenDataset.FormatOf("a.csv")).Message);

        string path = _files.Write("data.csv", "EU\tB-ORG\n");
        Assert.Equal(["B-ORG"], TokenDataset.Load(path, new TokenDataOptions { Format = TokenDataFormat.Conll }).Sentences[0].Tags);
    }

    [Fact]
    public void Options_reject_a_negative_token_column_and_a_tag_column_equal_to_it()
    {
        string path = _files.Write("t.conll", "EU\tB-ORG\n");
        Assert.Contains("TokenColumn is -1", Assert.Throws<SharpTuneException>(() => TokenDataset.Load(path, new TokenDataOptions { TokenColumn = -1 })).Message);
        Assert.Contains("both 0", Assert.Throws<SharpTuneException>(() => TokenDataset.Load(path, new TokenDataOptions { TagColumn = 0 })).Message);
    }

    [Fact]
    public void Tag_set_is_sorted_ordinally_with_O_first()
    {
        LabelSet tags = TokenDataset.TagSet([
            new TaggedSentence(["EU", "rejects"], ["B-ORG", "O"], 1),
            new TaggedSentence(["Peter", "Blackburn", "x"], ["B-PER", "I-PER", "B-MISC"], 4),
        ]);
        Assert.Equal(["O", "B-MISC", "B-ORG", "B-PER", "I-PER"], tags.Names);
        Assert.Equal(["ADJ", "NOUN"], LabelSet.FromTags(["NOUN", "ADJ", "NOUN"]).Names);
    }

    [Fact]
    public void Unknown_eval_tag_is_an_error_naming_file_and_the_line_of_its_token()
    {
        LabelSet tags = LabelSet.FromTags(["O", "B-PER"]);
        string conll = _files.Write("dev.conll", "Peter\tB-PER\n\nEU\tO\nrejects\tO\nGerman\tB-MISC\n");
        LoadedTokenData dev = TokenDataset.Load(conll);
        var error = Assert.Throws<SharpTuneException>(() => TokenDataset.CheckTags(dev.Sentences, tags, dev.Path));
        Assert.Equal($"{conll}:5: tag 'B-MISC' (token 3, 'German') was not seen in training (known: O, B-PER).", error.Message);

        string jsonl = _files.Write("dev.jsonl", "{\"tokens\": [\"Peter\"], \"tags\": [\"B-PER\"]}\n{\"tokens\": [\"EU\"], \"tags\": [\"B-ORG\"]}\n");
        LoadedTokenData devJson = TokenDataset.Load(jsonl);
        Assert.StartsWith($"{jsonl}:2: tag 'B-ORG'", Assert.Throws<SharpTuneException>(() => TokenDataset.CheckTags(devJson.Sentences, tags, jsonl)).Message);

        TokenDataset.CheckTags(TokenDataset.Load(conll).Sentences.Take(1), tags, conll);
    }

    [Theory]
    [InlineData("train.tsv", 201, 4958)]
    [InlineData("dev.tsv", 60, 1568)]
    [InlineData("test.tsv", 60, 1380)]
    public void Brown_sample_split_has_the_documented_sentence_and_token_counts(string file, int sentences, int tokens)
    {
        LoadedTokenData data = TokenDataset.Load(Path.Combine(BrownSample, file));
        Assert.Equal(sentences, data.Sentences.Count);
        Assert.Equal(tokens, data.Sentences.Sum(s => s.Tokens.Count));
        Assert.Equal(0, data.SkippedSentences);
        Assert.All(data.Sentences, s => Assert.Equal(s.Tokens.Count, s.Tags.Count));
    }

    [Fact]
    public void Brown_sample_trains_on_the_12_universal_tags_and_its_eval_splits_use_only_them()
    {
        LoadedTokenData train = TokenDataset.Load(Path.Combine(BrownSample, "train.tsv"));
        LabelSet tags = TokenDataset.TagSet(train.Sentences);
        Assert.Equal(UniversalTags, tags.Names);
        Assert.Equal(["Austin", ",", "Texas"], train.Sentences[0].Tokens);
        Assert.Equal(["NOUN", ".", "NOUN"], train.Sentences[0].Tags);
        foreach (string split in new[] { "dev.tsv", "test.tsv" })
        {
            LoadedTokenData eval = TokenDataset.Load(Path.Combine(BrownSample, split));
            TokenDataset.CheckTags(eval.Sentences, tags, eval.Path);
        }
    }
}
