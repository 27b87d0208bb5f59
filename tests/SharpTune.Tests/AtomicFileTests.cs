namespace SharpTune.Tests;

public sealed class AtomicFileTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sharptune-atomic-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Writes_utf8_without_a_byte_order_mark_creating_the_directory_and_leaving_no_temporary_file()
    {
        string path = Path.Combine(_folder, "new", "deeper", "a.json");
        AtomicFile.WriteText(path, "{\"é\": 1}");
        Assert.Equal(new byte[] { (byte)'{', (byte)'"', 0xC3, 0xA9 }, File.ReadAllBytes(path)[..4]);
        Assert.Equal([path], Directory.GetFiles(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void A_writer_that_fails_halfway_leaves_the_previous_file_whole_and_no_temporary_file()
    {
        string path = Path.Combine(_folder, "b.txt");
        AtomicFile.WriteText(path, "previous");
        var error = Assert.Throws<InvalidOperationException>(() => AtomicFile.WriteText(path, writer =>
        {
            writer.Write("half of the new con");
            writer.Flush();
            Assert.True(File.Exists(AtomicFile.TemporaryPath(path))); // the new bytes go to the temporary sibling
            throw new InvalidOperationException("disk gone");
        }));
        Assert.Equal("disk gone", error.Message);
        Assert.Equal("previous", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(_folder));
    }

    [Fact]
    public void A_path_writer_replaces_the_file_in_one_move()
    {
        string path = Path.Combine(_folder, "c.bin");
        File.WriteAllBytes(path, [1, 2, 3]);
        string? seen = null;
        AtomicFile.Write(path, temporary =>
        {
            seen = temporary;
            Assert.Equal([1, 2, 3], File.ReadAllBytes(path)); // untouched while the new file is written
            File.WriteAllBytes(temporary, [4, 5]);
        });
        Assert.Equal(AtomicFile.TemporaryPath(path), seen);
        Assert.Equal([4, 5], File.ReadAllBytes(path));
        Assert.False(File.Exists(seen));
    }
}
