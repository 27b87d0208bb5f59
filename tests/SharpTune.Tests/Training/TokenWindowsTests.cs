using SharpTune.Tests.Fixtures;
using SharpTune.Tokenization;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

public sealed class TokenWindowsTests
{
    public static TheoryData<string> Architectures() => new(HfFixtures.Architectures);

    [Theory]
    [MemberData(nameof(Architectures))]
    public void A_short_sentence_is_one_window_with_transformers_ids_and_labels_on_first_sub_tokens(string architecture)
    {
        var tokenizer = Tokenizer.FromDirectory(HfFixtures.Directory(architecture));
        var c = HfFixtures.Case(architecture, "words_ner");
        var words = c["words"]!.AsArray().Select(w => w!.GetValue<string>()).ToList();
        var tags = Enumerable.Range(0, words.Count).Select(i => i % 5).ToList();

        var windows = TokenWindows.Split(tokenizer, words, tags, 64, 8);

        var window = Assert.Single(windows);
        Assert.Equal(HfFixtures.Longs(c["input_ids"]), window.Encoding.InputIds);
        var wordIds = c["word_ids"]!.AsArray().Select(w => w is null ? -1 : w.GetValue<int>()).ToArray();
        // HF's alignment: the first sub-token of each word gets its tag, continuation and special tokens -100.
        var expected = wordIds.Select((w, i) => w >= 0 && (i == 0 || wordIds[i - 1] != w) ? (long)tags[w] : -100L).ToArray();
        Assert.Equal(expected, window.Labels);
        Assert.Equal((0, words.Count), window.OwnedWords);
    }

    [Fact]
    public void A_300_word_sentence_is_split_into_windows_and_every_word_is_tagged_once()
    {
        var tokenizer = Tokenizer.FromDirectory(HfFixtures.Directory("bert"));
        var random = new Random(5);
        string[] vocabulary = ["the", "committee", "approved", "unbelievably", "long", "budgets", ",", "and", "Atlanta's", "jalapeño", "1961", "reports"];
        var words = Enumerable.Range(0, 300).Select(_ => vocabulary[random.Next(vocabulary.Length)]).ToList();
        var tags = words.Select((_, i) => (i * 7) % 12).ToList();

        var windows = TokenWindows.Split(tokenizer, words, tags, maxLength: 32, stride: 8);

        Assert.True(windows.Count > 10, $"{windows.Count} windows");
        Assert.All(windows, w => Assert.True(w.Encoding.InputIds.Length <= 32));
        // Each word is owned by exactly one window, the windows' owned ranges tile the sentence, and neighbours overlap.
        Assert.Equal(0, windows[0].OwnedWords.Start);
        Assert.Equal(300, windows[^1].OwnedWords.End);
        for (int k = 1; k < windows.Count; k++)
        {
            Assert.Equal(windows[k - 1].OwnedWords.End, windows[k].OwnedWords.Start);
            Assert.True(windows[k].Encoding.WordIds.Where(w => w >= 0).Min() <= windows[k - 1].Encoding.WordIds.Max(), "windows share context");
        }
        Assert.Equal(300, windows.Sum(w => Enumerable.Range(0, w.Labels.Length).Count(w.Scores)));
        Assert.Equal(300, windows.Sum(w => w.Labels.Count(l => l != TokenWindows.IgnoreIndex)));

        // Stitching scores that put each token's own tag first gives back every word's tag: the sentence is tagged completely.
        // Window k scores that tag 0.5 + k/1000, so each word's score says which window it was read from: its owner.
        var scores = windows.Select((w, k) => w.Encoding.WordIds.Select(word =>
        {
            var row = new float[12];
            if (word >= 0) row[tags[word]] = 0.5f + k / 1000f;
            return row;
        }).ToArray()).ToList();
        var (stitched, chosen) = TokenWindows.Stitch(windows, scores, words.Count);
        Assert.Equal(tags, stitched);
        var owner = Enumerable.Range(0, words.Count).Select(word => windows.Select((w, k) => (w, k)).Single(x => word >= x.w.OwnedWords.Start && word < x.w.OwnedWords.End).k);
        Assert.Equal(owner.Select(k => 0.5f + k / 1000f), chosen);
    }

    [Fact]
    public void A_word_longer_than_the_window_keeps_its_first_sub_tokens_and_its_tag()
    {
        var tokenizer = Tokenizer.FromDirectory(HfFixtures.Directory("roberta"));
        string giant = string.Concat(Enumerable.Repeat("xqzj", 40));
        var windows = TokenWindows.Split(tokenizer, ["short", giant, "end"], [1, 2, 3], maxLength: 16, stride: 2);
        Assert.All(windows, w => Assert.True(w.Encoding.InputIds.Length <= 16));
        Assert.Equal([1L, 2L, 3L], windows.SelectMany(w => w.Labels.Where((l, i) => w.Scores(i)).Select((l, _) => l)).ToArray());
    }

    [Fact]
    public void Mismatched_tags_and_a_window_without_room_are_errors()
    {
        var tokenizer = Tokenizer.FromDirectory(HfFixtures.Directory("bert"));
        Assert.Throws<ArgumentException>(() => TokenWindows.Split(tokenizer, ["a", "b"], [1], 16, 2));
        Assert.Throws<ArgumentException>(() => TokenWindows.Split(tokenizer, ["a"], [1], 2, 0));
        Assert.Throws<ArgumentException>(() => TokenWindows.Split(tokenizer, ["a"], [1], 16, 14));
    }
}
