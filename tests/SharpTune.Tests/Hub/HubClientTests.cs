using SharpTune.Checkpoints;
using SharpTune.Hub;
using SharpTune.Models;
using SharpTune.Tests.Fixtures;
using SharpTune.Tokenization;
using TorchSharp;

namespace SharpTune.Tests.Hub;

/// <summary>
/// <see cref="HubClient"/> against <see cref="HubTestServer"/> serving the Hugging Face fixtures: cold download into the
/// huggingface_hub cache layout, reuse, offline mode, checksums, resumed transfers, the token, errors.
/// </summary>
public sealed class HubClientTests : IDisposable
{
    private const string Token = "hf_TestTokenThatMustNeverBePrinted0123";
    private readonly string cache = Directory.CreateTempSubdirectory("sharptune-hub-").FullName;
    private readonly HubTestServer server = new();
    private readonly List<HubEvent> events = [];

    public HubClientTests()
    {
        foreach (string architecture in HfFixtures.Architectures) server.Add("test-org/tiny-" + architecture, HfFixtures.Directory(architecture));
    }

    public void Dispose()
    {
        server.Dispose();
        Directory.Delete(cache, recursive: true);
    }

    private HubOptions Options(bool offline = false, string? token = null, int attempts = 5) =>
        new() { Endpoint = server.Endpoint, CacheDirectory = cache, Offline = offline, Token = token, Attempts = attempts, Timeout = TimeSpan.FromSeconds(20) };

    private HubSnapshot Download(string model, HubOptions? options = null)
    {
        using var client = new HubClient(options ?? Options());
        return client.Download(HubModelId.Parse(model), new Recorder(events));
    }

    private string RepoFolder(string architecture) => Path.Combine(cache, "models--test-org--tiny-" + architecture);

    [Theory]
    [InlineData("bert", new[] { "config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json" })]
    [InlineData("roberta", new[] { "config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json" })]
    [InlineData("deberta-v2", new[] { "config.json", "model.safetensors", "spm.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json" })]
    public void Cold_download_fetches_only_the_needed_files_into_the_cache_layout_and_loads_as_the_fixture_does(string architecture, string[] expected)
    {
        HubSnapshot snapshot = Download($"test-org/tiny-{architecture}");

        string repo = RepoFolder(architecture);
        Assert.Equal(Path.Combine(repo, "snapshots", HubTestServer.Commit), snapshot.Path);
        Assert.Equal(expected.Order(), snapshot.Files.Order());
        Assert.Equal(expected.Length, snapshot.Downloaded);
        Assert.Equal(expected.Order(), Directory.GetFiles(snapshot.Path).Select(Path.GetFileName).Order());
        Assert.Equal(HubTestServer.Commit, File.ReadAllText(Path.Combine(repo, "refs", "main")));
        // Each snapshot file is a relative link to blobs/<sha256 of LFS files | git blob id of the others>.
        foreach (string name in expected)
        {
            byte[] bytes = File.ReadAllBytes(Path.Combine(HfFixtures.Directory(architecture), name));
            string etag = HubTestServer.IsLfs(name) ? HubTestServer.Sha256(bytes) : HubTestServer.GitBlobId(bytes);
            Assert.Equal(Path.Combine("..", "..", "blobs", etag), new FileInfo(Path.Combine(snapshot.Path, name)).LinkTarget);
            Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(repo, "blobs", etag)));
        }
        Assert.Empty(Directory.GetFiles(cache, "*.incomplete", SearchOption.AllDirectories));

        // The snapshot loads as the fixture directory does: same logits, and the tokenizer gives transformers' ids.
        var @case = HfFixtures.TextCases(architecture).First();
        using var scope = torch.NewDisposeScope();
        using var downloaded = ClassifierCheckpoint.Load(snapshot.Path).Model;
        using var local = HfParity.LoadClassifier(architecture);
        var (hidden, logits) = HfParity.Run(downloaded, @case);
        var (localHidden, localLogits) = HfParity.Run(local, @case);
        Assert.True(localLogits.allclose(logits, rtol: 0, atol: 0), "logits differ from the fixture directory's");
        Assert.True(localHidden.allclose(hidden, rtol: 0, atol: 0), "hidden states differ from the fixture directory's");
        Assert.True(HfParity.MaxAbsDiff(logits, @case["sequence_logits"]) < 1e-4);
        Assert.Equal(HfFixtures.Longs(@case["input_ids"]), Tokenizer.FromDirectory(snapshot.Path).Encode(@case["text"]!.GetValue<string>()).InputIds);
    }

    [Fact]
    public void A_sharded_checkpoint_brings_its_index_and_every_shard_and_loads_whole()
    {
        string repoDir = Path.Combine(cache, "..", Path.GetFileName(cache) + "-sharded");
        try
        {
            string fixture = HfFixtures.Directory("bert");
            var tensors = SafeTensors.Load(Path.Combine(fixture, "model.safetensors"));
            try
            {
                HfModelDirectory.Write(repoDir, System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject(), tensors, maxShardBytes: 1_500_000);
            }
            finally
            {
                foreach (var t in tensors.Values) t.Dispose();
            }
            foreach (string name in new[] { "vocab.txt", "tokenizer_config.json", "special_tokens_map.json" }) File.Copy(Path.Combine(fixture, name), Path.Combine(repoDir, name));
            server.Add("test-org/tiny-sharded", repoDir);
            var shards = SafeTensorsIndex.Read(Path.Combine(repoDir, SafeTensorsIndex.FileName)).Shards;
            Assert.True(shards.Count >= 2, "the fixture should be sharded");

            HubSnapshot snapshot = Download("test-org/tiny-sharded");

            Assert.Equal(new[] { "config.json", SafeTensorsIndex.FileName, "vocab.txt", "tokenizer_config.json", "special_tokens_map.json" }.Concat(shards).Order(), snapshot.Files.Order());
            using var scope = torch.NewDisposeScope();
            using var downloaded = PretrainedEncoder.Load(snapshot.Path);
            using var local = PretrainedEncoder.Load(fixture);
            var ids = torch.tensor(new long[] { 2, 17, 33, 45, 3 }).unsqueeze(0);
            Assert.True(local.Model.call(ids, null, null).LastHiddenState.allclose(downloaded.Model.call(ids, null, null).LastHiddenState, rtol: 0, atol: 0));
        }
        finally
        {
            if (Directory.Exists(repoDir)) Directory.Delete(repoDir, recursive: true);
        }
    }

    [Fact]
    public void A_second_download_asks_only_for_the_listing_and_transfers_no_file()
    {
        HubSnapshot first = Download("test-org/tiny-bert");
        int files = server.FileRequests;
        int api = server.ApiRequests;
        Assert.True(files >= 5);

        HubSnapshot second = Download("test-org/tiny-bert");

        Assert.Equal(first.Path, second.Path);
        Assert.Equal(0, second.Downloaded);
        Assert.Equal(files, server.FileRequests);
        Assert.Equal(api + 1, server.ApiRequests);
    }

    [Fact]
    public void A_cached_commit_makes_no_request_at_all()
    {
        Download("test-org/tiny-bert");
        int requests = server.Requests.Count;

        HubSnapshot pinned = Download($"test-org/tiny-bert@{HubTestServer.Commit}");

        Assert.Equal(requests, server.Requests.Count);
        Assert.Equal(0, pinned.Downloaded);
        Assert.Contains(events, e => e is HubResolvedEvent { FromCache: true });
    }

    [Fact]
    public void Offline_mode_reads_the_cache_without_any_request_and_names_what_is_not_cached()
    {
        Download("test-org/tiny-bert");
        int requests = server.Requests.Count;

        HubSnapshot offline = Download("test-org/tiny-bert", Options(offline: true));
        using (var encoder = PretrainedEncoder.Load(offline.Path)) Assert.Equal("bert", encoder.Model.Config.ModelType);

        var e = Assert.Throws<SharpTuneException>(() => Download("test-org/tiny-roberta", Options(offline: true)));
        Assert.Equal(requests, server.Requests.Count);
        Assert.Contains("test-org/tiny-roberta@main", e.Message);
        Assert.Contains("HF_HUB_OFFLINE", e.Message);

        // A cached snapshot that lacks a file the model needs is named.
        File.Delete(Path.Combine(offline.Path, "model.safetensors"));
        e = Assert.Throws<SharpTuneException>(() => Download("test-org/tiny-bert", Options(offline: true)));
        Assert.Contains("test-org/tiny-bert@main", e.Message);
        Assert.Contains("model.safetensors", e.Message);
        Assert.Equal(requests, server.Requests.Count);
    }

    [Fact]
    public void When_the_hub_is_down_a_cached_revision_is_used_and_an_uncached_one_is_a_clear_error()
    {
        Download("test-org/tiny-bert");
        server.Dispose();

        HubSnapshot cached = Download("test-org/tiny-bert", Options() with { Timeout = TimeSpan.FromSeconds(5) });
        Assert.Equal(HubTestServer.Commit, cached.Commit);
        Assert.Contains(events, e => e is HubCacheFallbackEvent);

        var e = Assert.Throws<SharpTuneException>(() => Download("test-org/tiny-electra", Options() with { Timeout = TimeSpan.FromSeconds(5) }));
        Assert.Contains("test-org/tiny-electra@main", e.Message);
        Assert.Contains(server.Endpoint, e.Message);
    }

    [Fact]
    public void A_download_whose_sha256_differs_is_rejected_and_nothing_of_it_stays_in_the_cache()
    {
        server.Corrupt["model.safetensors"] = true;
        byte[] weights = File.ReadAllBytes(Path.Combine(HfFixtures.Directory("bert"), "model.safetensors"));
        string sha = HubTestServer.Sha256(weights);

        var e = Assert.Throws<SharpTuneException>(() => Download("test-org/tiny-bert"));

        Assert.Contains("test-org/tiny-bert@main: model.safetensors", e.Message);
        Assert.Contains("sha256", e.Message);
        Assert.Contains(sha, e.Message);
        // Everything but the (empty) lock files, which huggingface_hub leaves in .locks/ too.
        string[] everything = Directory.GetFiles(cache, "*", SearchOption.AllDirectories).Where(f => !f.Contains("/.locks/", StringComparison.Ordinal)).ToArray();
        Assert.DoesNotContain(everything, f => Path.GetFileName(f).StartsWith(sha, StringComparison.Ordinal));
        Assert.DoesNotContain(everything, f => f.EndsWith(".incomplete", StringComparison.Ordinal) || Path.GetFileName(f) == "model.safetensors");
        Assert.False(File.Exists(Path.Combine(RepoFolder("bert"), "refs", "main")), "a failed download must not publish the revision");

        // The next attempt, with a good transfer, completes.
        server.Corrupt.Clear();
        HubSnapshot snapshot = Download("test-org/tiny-bert");
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(snapshot.Path, "model.safetensors")));
    }

    [Fact]
    public void A_dropped_transfer_is_resumed_with_a_range_in_the_same_call()
    {
        server.DropAfter["model.safetensors"] = 1_000_000;

        HubSnapshot snapshot = Download("test-org/tiny-bert");

        var transfers = server.RequestsFor("model.safetensors").Where(r => r.Cdn).ToList();
        Assert.Equal(2, transfers.Count);
        Assert.Null(transfers[0].Range);
        Assert.Equal("bytes=1000000-", transfers[1].Range);
        Assert.Equal(File.ReadAllBytes(Path.Combine(HfFixtures.Directory("bert"), "model.safetensors")), File.ReadAllBytes(Path.Combine(snapshot.Path, "model.safetensors")));
        Assert.Contains(events, e => e is HubRetryEvent { File: "model.safetensors", ResumeFrom: 1_000_000 });
    }

    [Fact]
    public void A_failed_transfer_leaves_its_partial_file_and_the_next_call_resumes_from_it()
    {
        server.DropAfter["model.safetensors"] = 700_000;
        var e = Assert.Throws<SharpTuneException>(() => Download("test-org/tiny-bert", Options(attempts: 1)));
        Assert.Contains("test-org/tiny-bert@main: model.safetensors", e.Message);
        string partial = Assert.Single(Directory.GetFiles(cache, "*.incomplete", SearchOption.AllDirectories));
        Assert.Equal(700_000, new FileInfo(partial).Length);

        HubSnapshot snapshot = Download("test-org/tiny-bert", Options(attempts: 1));

        Assert.Equal("bytes=700000-", server.RequestsFor("model.safetensors").Last(r => r.Cdn).Range);
        Assert.Equal(File.ReadAllBytes(Path.Combine(HfFixtures.Directory("bert"), "model.safetensors")), File.ReadAllBytes(Path.Combine(snapshot.Path, "model.safetensors")));
        Assert.Empty(Directory.GetFiles(cache, "*.incomplete", SearchOption.AllDirectories));
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("vocab.txt")]
    public void A_hub_answer_naming_another_blob_than_the_listing_is_refused_and_nothing_is_kept(string file)
    {
        server.WrongEtag[file] = true;

        var e = Assert.Throws<SharpTuneException>(() => Download("test-org/tiny-bert"));

        Assert.StartsWith($"test-org/tiny-bert@main: {file}: the hub serves the blob", e.Message);
        Assert.DoesNotContain(Directory.GetFiles(cache, "*", SearchOption.AllDirectories), f => f.EndsWith(".incomplete", StringComparison.Ordinal) || Path.GetFileName(f) == file);
    }

    [Fact]
    public void A_needed_file_the_listing_gives_no_hash_for_is_refused()
    {
        server.NoHash["model.safetensors"] = true;

        var e = Assert.Throws<SharpTuneException>(() => Download("test-org/tiny-bert"));

        Assert.StartsWith($"test-org/tiny-bert@main (commit {HubTestServer.Commit}): model.safetensors: the hub's file listing gives no size and hash", e.Message);
        Assert.Empty(server.RequestsFor("model.safetensors"));
    }

    [Fact]
    public async Task Two_concurrent_downloads_of_one_model_transfer_each_file_once()
    {
        server.Pause["model.safetensors"] = TimeSpan.FromMilliseconds(500);

        HubSnapshot[] results = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Task.Run(() => Download("test-org/tiny-bert"))));

        Assert.Equal(results[0].Path, results[1].Path);
        Assert.Equal(5, results.Sum(d => d.Downloaded));
        Assert.Single(server.RequestsFor("model.safetensors"), r => r.Cdn);
        Assert.Equal(File.ReadAllBytes(Path.Combine(HfFixtures.Directory("bert"), "model.safetensors")), File.ReadAllBytes(Path.Combine(results[0].Path, "model.safetensors")));
    }

    [Fact]
    public void The_token_is_sent_to_the_hub_only_and_appears_in_no_message_or_event()
    {
        server.RequiredToken = Token;
        var messages = new List<string>();

        HubSnapshot snapshot = Download("test-org/tiny-bert", Options(token: Token));
        Assert.Equal(5, snapshot.Downloaded);
        Assert.All(server.Requests.Where(r => !r.Cdn), r => Assert.Equal("Bearer " + Token, r.Authorization));
        Assert.Contains(server.Requests, r => r.Cdn);
        Assert.All(server.Requests.Where(r => r.Cdn), r => Assert.Null(r.Authorization)); // never to another host

        // Refused: a wrong token, no token, an unknown model with a token. None of the messages shows it.
        string wrong = Token + "x";
        foreach (var (model, options) in new[] { ("test-org/tiny-roberta", Options(token: wrong)), ("test-org/tiny-roberta", Options()), ("test-org/nope", Options(token: Token)) })
        {
            var e = Assert.Throws<SharpTuneException>(() => Download(model, options));
            for (Exception? x = e; x is not null; x = x.InnerException) messages.Add(x.ToString());
            Assert.Contains(model + "@main", e.Message);
        }
        messages.Add(Options(token: Token).ToString());
        messages.AddRange(events.Select(e => e.ToString()));
        Assert.All(messages, m => Assert.DoesNotContain(Token, m));
        Assert.Contains("401", messages[0]);
    }

    [Fact]
    public void A_missing_model_or_revision_is_a_clear_error_naming_it()
    {
        var e = Assert.Throws<SharpTuneException>(() => Download("test-org/nope"));
        Assert.StartsWith("test-org/nope@main: no such model or revision", e.Message);
        Assert.Contains("404", e.Message);

        e = Assert.Throws<SharpTuneException>(() => Download("test-org/tiny-bert@v9"));
        Assert.StartsWith("test-org/tiny-bert@v9: the revision 'v9' does not exist", e.Message);
        Assert.False(Directory.Exists(Path.Combine(RepoFolder("bert"), "snapshots")));
    }

    [Theory]
    [InlineData("org/name", "org/name", "main")]
    [InlineData("sentence-transformers/all-MiniLM-L6-v2@v1.0", "sentence-transformers/all-MiniLM-L6-v2", "v1.0")]
    [InlineData("org/name@refs/pr/1", "org/name", "refs/pr/1")]
    public void Hub_ids_are_read_with_their_revision(string text, string repo, string revision)
    {
        Assert.True(HubModelId.TryParse(text, out var id));
        Assert.Equal(new HubModelId(repo, revision), id);
    }

    [Theory]
    [InlineData("name")]
    [InlineData("./org/name")]
    [InlineData("/abs/path")]
    [InlineData("a/b/c")]
    [InlineData("org/name@")]
    [InlineData("org/name@../../x")]
    [InlineData("org--x/name")]
    [InlineData("org/../name")]
    public void Paths_and_malformed_ids_are_not_hub_ids(string text) => Assert.False(HubModelId.TryParse(text, out _));

    [Fact]
    public void Options_come_from_the_huggingface_hub_variables()
    {
        string home = Path.Combine(cache, "hf-home");
        Directory.CreateDirectory(home);
        File.WriteAllText(Path.Combine(home, "token"), "hf_fromfile\n");
        var env = new Dictionary<string, string> { ["HF_HOME"] = home, ["HF_ENDPOINT"] = "http://mirror.example/", ["HF_HUB_OFFLINE"] = "yes" };
        HubOptions options = HubOptions.FromEnvironment(name => env.GetValueOrDefault(name));
        Assert.Equal(Path.Combine(home, "hub"), options.CacheDirectory);
        Assert.Equal("http://mirror.example", options.Endpoint);
        Assert.True(options.Offline);
        Assert.Equal("hf_fromfile", options.Token);

        env["HF_HUB_CACHE"] = "/elsewhere";
        env["HF_TOKEN"] = "hf_fromenv";
        env["HF_HUB_OFFLINE"] = "0";
        options = HubOptions.FromEnvironment(name => env.GetValueOrDefault(name));
        Assert.Equal("/elsewhere", options.CacheDirectory);
        Assert.Equal("hf_fromenv", options.Token);
        Assert.False(options.Offline);
    }

    private sealed class Recorder(List<HubEvent> events) : IProgress<HubEvent>
    {
        public void Report(HubEvent value)
        {
            lock (events) events.Add(value);
        }
    }
}
