using System.Diagnostics;
using System.Text.Json.Nodes;
using SharpTune.Hub;
using SharpTune.Lora;
using SharpTune.Tests.Fixtures;
using SharpTune.Training;

namespace SharpTune.Tests.Hub;

/// <summary>
/// <c>--model org/name[@revision]</c> in the real CLI process, with the hub settings in its environment (HF_ENDPOINT,
/// HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE) pointing at <see cref="HubTestServer"/>.
/// </summary>
public sealed class HubCliTests : IDisposable
{
    private const string Token = "hf_CliTokenThatMustNeverBePrinted4567";
    private readonly string cache = Directory.CreateTempSubdirectory("sharptune-hubcli-").FullName;
    private readonly HubTestServer server = new HubTestServer().Add("test-org/tiny-bert", HfFixtures.Directory("bert"));

    public void Dispose()
    {
        server.Dispose();
        Directory.Delete(cache, recursive: true);
    }

    private Task<(int Exit, string Stdout, string Stderr)> Cli(bool offline, params string[] args) => CliIn(null, offline, args);

    private async Task<(int Exit, string Stdout, string Stderr)> CliIn(string? workingDirectory, bool offline, params string[] args)
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        foreach (string name in new[] { "HF_HOME", "HF_TOKEN_PATH", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_HUB_CACHE" }) start.Environment.Remove(name);
        start.Environment["HF_ENDPOINT"] = server.Endpoint;
        start.Environment["HF_HUB_CACHE"] = cache;
        start.Environment["HF_TOKEN"] = Token;
        start.Environment["HF_HUB_OFFLINE"] = offline ? "1" : "0";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = await process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(180_000), "the CLI did not exit");
        return (process.ExitCode, await stdout, stderr);
    }

    private static string[] Embed(string model) => ["embed", "--model", model, "--text", "hello world", "--format", "json"];

    [Fact]
    public async Task Embed_with_a_hub_id_downloads_then_prints_what_the_local_directory_gives_and_never_the_token()
    {
        server.RequiredToken = Token;

        var hub = await Cli(false, Embed("test-org/tiny-bert"));
        var local = await Cli(false, Embed(HfFixtures.Directory("bert")));

        Assert.True(hub.Exit == 0, hub.Stderr);
        Assert.True(local.Exit == 0, local.Stderr);
        // Standard output is the JSON alone (progress went to standard error), with the fixture directory's vector.
        Assert.Equal(JsonNode.Parse(local.Stdout)!["embedding"]!.ToJsonString(), JsonNode.Parse(hub.Stdout)!["embedding"]!.ToJsonString());
        Assert.Contains("Hub: downloaded model.safetensors", hub.Stderr);
        Assert.Contains($"snapshots/{HubTestServer.Commit}", hub.Stderr);
        Assert.All(server.Requests.Where(r => !r.Cdn), r => Assert.Equal("Bearer " + Token, r.Authorization));
        Assert.DoesNotContain(Token, hub.Stdout + hub.Stderr);
    }

    [Fact]
    public async Task Offline_the_cached_model_is_used_without_a_request_and_an_uncached_one_is_one_error_line()
    {
        var online = await Cli(false, Embed("test-org/tiny-bert"));
        Assert.True(online.Exit == 0, online.Stderr);
        int requests = server.Requests.Count;

        var offline = await Cli(true, Embed("test-org/tiny-bert"));
        var missing = await Cli(true, Embed("test-org/tiny-roberta@v2"));

        Assert.True(offline.Exit == 0, offline.Stderr);
        Assert.Equal(online.Stdout, offline.Stdout);
        Assert.Equal(requests, server.Requests.Count);
        Assert.Equal(1, missing.Exit);
        Assert.Equal("", missing.Stdout);
        string line = Assert.Single(missing.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: --model test-org/tiny-roberta@v2: HF_HUB_OFFLINE is set", line);
        Assert.DoesNotContain(Token, online.Stderr + offline.Stderr + missing.Stderr);
    }

    [Fact]
    public async Task A_local_directory_that_reads_like_a_hub_id_stays_local()
    {
        string work = Path.Combine(cache, "work");
        string local = Path.Combine(work, "test-org", "tiny-bert");
        Directory.CreateDirectory(local);
        foreach (string name in new[] { "config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json" })
            File.Copy(Path.Combine(HfFixtures.Directory("bert"), name), Path.Combine(local, name));

        var (exit, stdout, stderr) = await CliIn(work, false, "inspect", "--model", "test-org/tiny-bert");

        Assert.True(exit == 0, stderr);
        Assert.Contains("Model test-org/tiny-bert", stdout);
        Assert.Empty(server.Requests);
    }

    private static JsonNode ReadJson(params string[] path) => JsonNode.Parse(File.ReadAllText(Path.Combine(path)))!;

    [Fact]
    public async Task A_run_trained_from_a_hub_id_records_the_id_and_commit_not_the_cache_path_and_resumes_under_it()
    {
        string work = Path.Combine(cache, "work");
        Directory.CreateDirectory(work);
        string train = Path.Combine(work, "train.csv");
        File.WriteAllText(train, "text,label\n" + string.Concat(TinyModels.ToyTexts(16, seed: 1).Select(e => $"{e.Text},{e.Label}\n")));
        string run = Path.Combine(work, "run");
        string id = "test-org/tiny-bert@" + HubTestServer.Commit;
        string snapshot = Path.Combine(cache, "models--test-org--tiny-bert", "snapshots", HubTestServer.Commit);
        // 16 examples in batches of 8, 2 epochs: 4 steps, a checkpoint after each.
        string[] args = ["train", "--train", train, "--strategy", "lora:r=2,alpha=8", "--epochs", "2", "--batch-size", "8", "--save-steps", "1"];

        var trained = await Cli(false, [.. args, "--model", "test-org/tiny-bert", "--out", run]);

        Assert.True(trained.Exit == 0, trained.Stderr + trained.Stdout);
        Assert.Equal(id, ReadJson(run, RunRecorder.SummaryFile)["model"]!.GetValue<string>());
        Assert.Equal(snapshot, ReadJson(run, RunRecorder.SummaryFile)["model_path"]!.GetValue<string>()); // this machine's copy, as extra
        // The PEFT adapter names its base as PEFT does for a hub model: the id, and the commit as the revision.
        void AdapterNamesTheHubModel(string directory)
        {
            JsonNode config = ReadJson(directory, PeftAdapter.RunSubdirectory, PeftAdapter.ConfigFile);
            Assert.Equal("test-org/tiny-bert", config["base_model_name_or_path"]!.GetValue<string>());
            Assert.Equal(HubTestServer.Commit, config["revision"]!.GetValue<string>());
        }
        AdapterNamesTheHubModel(run);
        AdapterNamesTheHubModel(TrainingCheckpoint.DirectoryOf(run, 3));
        using (TaskModel loaded = TaskModel.Load(run)) Assert.Equal(id, loaded.BaseModel);

        // Interrupted after step 3 (its last checkpoint gone): --resume continues it under the same hub model.
        Directory.Delete(TrainingCheckpoint.DirectoryOf(run, 4), recursive: true);
        var resumed = await Cli(false, [.. args, "--resume", run]);
        Assert.True(resumed.Exit == 0, resumed.Stderr + resumed.Stdout);
        Assert.Contains($"resuming {TrainingCheckpoint.DirectoryOf(run, 3)}", resumed.Stdout);
        AdapterNamesTheHubModel(run);
        AdapterNamesTheHubModel(TrainingCheckpoint.DirectoryOf(run, 4));

        // compare records it the same way (offline: from the cache).
        string compare = Path.Combine(work, "compare");
        var compared = await Cli(true, "compare", "--model", "test-org/tiny-bert", "--train", train, "--eval", train, "--strategies", "frozen",
            "--epochs", "1", "--batch-size", "8", "--out", compare);
        Assert.True(compared.Exit == 0, compared.Stderr + compared.Stdout);
        Assert.Equal(id, ReadJson(compare, StrategyComparison.JsonFile)["options"]!["model"]!.GetValue<string>());
        Assert.Equal(id, ReadJson(compare, "frozen", RunRecorder.SummaryFile)["model"]!.GetValue<string>());
        Assert.Contains($"Model {id},", File.ReadAllText(Path.Combine(compare, StrategyComparison.MarkdownFile)));
    }

    [Fact]
    public void A_snapshot_of_the_hub_cache_is_named_by_its_id_and_commit_any_other_directory_by_its_full_path()
    {
        string commit = HubTestServer.Commit;
        Assert.Equal("test-org/tiny-bert@" + commit, HubModelId.NameOrPath(Path.Combine(cache, "models--test-org--tiny-bert", "snapshots", commit) + "/"));
        foreach (string other in new[]
        {
            Path.Combine(cache, "models--test-org--tiny-bert", "snapshots", commit[..12]),   // not a full commit
            Path.Combine(cache, "datasets--test-org--tiny-bert", "snapshots", commit),       // not a model
            Path.Combine(cache, "models--a--b--c", "snapshots", commit),                     // not org/name
            Path.Combine(cache, "models--test-org--tiny-bert", "refs", commit),
        })
        {
            Assert.False(HubModelId.TryFromSnapshot(other, out _), other);
            Assert.Equal(other, HubModelId.NameOrPath(other));
        }
        Assert.Equal(Path.GetFullPath("runs/x"), HubModelId.NameOrPath("runs/x"));
    }

    [Fact]
    public async Task An_unknown_hub_model_is_one_error_line_naming_the_option_and_exit_1()
    {
        var (exit, stdout, stderr) = await Cli(false, "inspect", "--model", "test-org/nope");

        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: --model test-org/nope@main: no such model or revision", line);
        Assert.DoesNotContain(Token, stderr);
    }
}
