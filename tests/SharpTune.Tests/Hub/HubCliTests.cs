using System.Diagnostics;
using System.Text.Json.Nodes;
using SharpTune.Tests.Fixtures;

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
