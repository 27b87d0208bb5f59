using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Tests.Fixtures;

namespace SharpTune.Tests.Checkpoints;

/// <summary>
/// No file name read from a file leaves its directory: the shards of a weight_map (safetensors and pytorch_model.bin
/// indexes) and the files listed in the packaged model's completion marker go through <see cref="SafePath.Within"/>,
/// which refuses rooted names, '..' and symbolic links that resolve outside — and still reads a Hugging Face hub
/// cache, whose files are links to ../../blobs/.
/// </summary>
public sealed class TrustBoundaryTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Escapes =>
        ["../../etc/passwd", "/etc/passwd", "..", "sub/../../x.safetensors", "..\\..\\x.safetensors", "C:\\Windows\\x.safetensors", "\\\\server\\share\\x"];

    /// <summary>A bert fixture directory whose weights are one shard plus <paramref name="indexName"/>, the shard named <paramref name="shard"/>.</summary>
    private string ShardedFixture(string indexName, string shard, string? shardFile = null)
    {
        string dir = Path.Combine(_dir.Path, "model");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(HfFixtures.Directory("bert"), "config.json"), Path.Combine(dir, "config.json"));
        if (shardFile is not null) File.Copy(Path.Combine(HfFixtures.Directory("bert"), "model.safetensors"), shardFile);
        var weightMap = new JsonObject();
        foreach (string key in SafeTensors.ReadHeader(Path.Combine(HfFixtures.Directory("bert"), "model.safetensors")).Names) weightMap[key] = shard;
        File.WriteAllText(Path.Combine(dir, indexName), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = weightMap }.ToJsonString());
        return dir;
    }

    [Theory]
    [MemberData(nameof(Escapes))]
    public void A_safetensors_index_naming_a_shard_outside_its_directory_is_refused(string shard)
    {
        string dir = ShardedFixture(SafeTensorsIndex.FileName, shard);
        string index = Path.Combine(dir, SafeTensorsIndex.FileName);
        var e = Assert.Throws<SharpTuneException>(() => SafeTensorsIndex.Read(index));
        Assert.StartsWith($"{index}: weight_map.", e.Message);
        Assert.Contains($"names '{shard}', which ", e.Message);
        Assert.Throws<SharpTuneException>(() => HfModelDirectory.Open(dir).LoadWeights());
    }

    [Fact]
    public void A_pytorch_model_bin_index_naming_etc_passwd_is_refused()
    {
        string dir = ShardedFixture(PickleCheckpoint.IndexFileName, "/etc/passwd");
        var e = Assert.Throws<SharpTuneException>(() => HfModelDirectory.Open(dir).LoadWeights());
        Assert.Contains($"{Path.Combine(dir, PickleCheckpoint.IndexFileName)}: weight_map.bert.", e.Message);
        Assert.Contains("names '/etc/passwd', which is an absolute path", e.Message);
    }

    [Fact]
    public void A_shard_that_is_a_symbolic_link_out_of_the_directory_is_refused()
    {
        string outside = _dir.File("elsewhere.safetensors");
        string dir = ShardedFixture(SafeTensorsIndex.FileName, "model-00001-of-00001.safetensors", outside);
        File.CreateSymbolicLink(Path.Combine(dir, "model-00001-of-00001.safetensors"), outside);
        var e = Assert.Throws<SharpTuneException>(() => HfModelDirectory.Open(dir).LoadWeights());
        Assert.Contains($"is a symbolic link to {outside} outside the directory", e.Message);

        // A linked folder on the way counts too.
        string folder = _dir.File("folder");
        Directory.CreateDirectory(folder);
        File.Copy(outside, Path.Combine(folder, "shard.safetensors"));
        Directory.CreateSymbolicLink(Path.Combine(dir, "sub"), folder);
        e = Assert.Throws<SharpTuneException>(() => SafePath.Within(dir, "sub/shard.safetensors", "index.json", "weight_map.x"));
        Assert.Contains($"index.json: weight_map.x names 'sub/shard.safetensors', which is a symbolic link to {folder} outside the directory", e.Message);
    }

    [Fact]
    public void Links_inside_the_directory_and_a_hub_cache_snapshot_load()
    {
        // huggingface_hub's cache: models--org--name/snapshots/<revision>/<file> → ../../blobs/<hash>.
        string repo = _dir.File("models--org--tiny-bert");
        string snapshot = Path.Combine(repo, "snapshots", "0123abc");
        string blobs = Path.Combine(repo, "blobs");
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(blobs);
        File.Copy(Path.Combine(HfFixtures.Directory("bert"), "model.safetensors"), Path.Combine(blobs, "5f2e"));
        File.Copy(Path.Combine(HfFixtures.Directory("bert"), "config.json"), Path.Combine(snapshot, "config.json"));
        File.CreateSymbolicLink(Path.Combine(snapshot, "model-00001-of-00001.safetensors"), "../../blobs/5f2e");
        var weightMap = new JsonObject();
        foreach (string key in SafeTensors.ReadHeader(Path.Combine(blobs, "5f2e")).Names) weightMap[key] = "model-00001-of-00001.safetensors";
        File.WriteAllText(Path.Combine(snapshot, SafeTensorsIndex.FileName), new JsonObject { ["weight_map"] = weightMap }.ToJsonString());
        var weights = HfModelDirectory.Open(snapshot).LoadWeights();
        Assert.Equal(weightMap.Count, weights.Count);
        foreach (var t in weights.Values) t.Dispose();

        // Inside an ordinary directory a link to a sibling is fine; the same link from a non-snapshot folder is not.
        File.CreateSymbolicLink(Path.Combine(blobs, "alias"), "5f2e");
        Assert.Equal(Path.Combine(blobs, "alias"), SafePath.Within(blobs, "alias", "x", "y"));
        string other = Path.Combine(repo, "other", "0123abc");
        Directory.CreateDirectory(other);
        File.CreateSymbolicLink(Path.Combine(other, "shard"), "../../blobs/5f2e");
        Assert.Throws<SharpTuneException>(() => SafePath.Within(other, "shard", "x", "y"));
    }

    [Fact]
    public void A_packaged_model_marker_listing_a_file_outside_its_directory_is_refused()
    {
        string dir = _dir.File("all-MiniLM-L6-v2");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        string marker = Path.Combine(dir, PackagedModels.MarkerFile);
        File.WriteAllLines(marker, [PackagedModels.MarkerVersion, "2 00 config.json"]);
        Assert.True(PackagedModels.IsComplete(dir));
        File.WriteAllLines(marker, [PackagedModels.MarkerVersion, "2 00 config.json", "1 00 ../../../etc/passwd"]);
        var e = Assert.Throws<SharpTuneException>(() => PackagedModels.IsComplete(dir));
        Assert.Contains($"{marker}: line 3 names '../../../etc/passwd', which climbs out of the directory with '..'", e.Message);
    }
}
