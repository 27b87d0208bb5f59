using SharpTune.Data;

namespace SharpTune.Tests.Data;

public sealed class LabelSetTests : IDisposable
{
    private readonly TempFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void Labels_from_training_are_sorted_ordinally_and_distinct()
    {
        LabelSet labels = LabelSet.FromTraining([
            TextExample.Single("a", "spam"), TextExample.Single("b", "ham"), TextExample.Single("c", "Zed"),
            TextExample.Multi("d", ["ham", "eggs"]),
        ]);
        Assert.Equal(["Zed", "eggs", "ham", "spam"], labels.Names);
        Assert.Equal(2, labels.Id("ham"));
        Assert.Equal("spam", labels.Name(3));
        Assert.Contains("'bacon'", Assert.Throws<SharpTuneException>(() => labels.Id("bacon")).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => labels.Name(4));
    }

    [Fact]
    public void Hugging_face_dictionaries_round_trip()
    {
        LabelSet labels = LabelSet.FromNames(["neg", "pos"]);
        Dictionary<string, string> id2label = labels.ToId2Label();
        Assert.Equal(new Dictionary<string, string> { ["0"] = "neg", ["1"] = "pos" }, id2label);
        Assert.Equal(new Dictionary<string, int> { ["neg"] = 0, ["pos"] = 1 }, labels.ToLabel2Id());

        LabelSet back = LabelSet.FromHuggingFace(new Dictionary<string, string> { ["1"] = "pos", ["0"] = "neg" }, labels.ToLabel2Id());
        Assert.Equal(labels.Names, back.Names);
    }

    [Fact]
    public void Hugging_face_dictionaries_with_gaps_or_disagreements_are_rejected()
    {
        var gap = new Dictionary<string, string> { ["0"] = "a", ["2"] = "b" };
        Assert.Contains("'2'", Assert.Throws<SharpTuneException>(() => LabelSet.FromHuggingFace(gap, source: "m/config.json")).Message);
        var id2label = new Dictionary<string, string> { ["0"] = "a", ["1"] = "b" };
        var swapped = new Dictionary<string, int> { ["a"] = 1, ["b"] = 0 };
        var error = Assert.Throws<SharpTuneException>(() => LabelSet.FromHuggingFace(id2label, swapped, "m/config.json"));
        Assert.StartsWith("m/config.json:", error.Message);
        Assert.Contains("label2id['a']", error.Message);
    }

    [Fact]
    public void Eval_label_unseen_in_training_names_file_line_and_label()
    {
        LabelSet labels = LabelSet.FromNames(["ham", "spam"]);
        string path = _files.Write("dev.csv", "text,label\na,ham\nb,eggs\nc,spam\n");
        LoadedData dev = TextDataset.Load(path);
        var error = Assert.Throws<SharpTuneException>(() => labels.Check(dev));
        Assert.StartsWith($"{path}:3:", error.Message);
        Assert.Contains("'eggs'", error.Message);

        LoadedData kept = labels.Check(dev, skipUnknown: true);
        Assert.Equal(["a", "c"], kept.Examples.Select(e => e.Text));
        Assert.Equal(1, kept.SkippedRows);
        Assert.Contains("'eggs'", Assert.Single(kept.SkipReasons));
    }
}
