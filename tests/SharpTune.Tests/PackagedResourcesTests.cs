using SharpTune.Checkpoints;

namespace SharpTune.Tests;

public class PackagedResourcesTests
{
    [Fact]
    public void MiniLM_vocab_is_read_from_the_packaged_assembly()
    {
        using var memory = new MemoryStream();
        PackagedResources.Extract(PackagedResources.MiniLMAssemblyPath, PackagedResources.MiniLMVocab, memory);
        string[] lines = System.Text.Encoding.UTF8.GetString(memory.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(30522, lines.Length);
        Assert.Equal("[PAD]", lines[0]);
        Assert.Equal("[CLS]", lines[101]);
    }

    [Fact]
    public void Missing_resource_is_named_in_the_error()
    {
        var error = Assert.Throws<SharpTuneException>(() => PackagedResources.Extract(PackagedResources.MiniLMAssemblyPath, "no.such.resource", Stream.Null));
        Assert.Contains("no.such.resource", error.Message);
    }
}
