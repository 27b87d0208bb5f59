using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace SharpTune.Tests.Hub;

/// <summary>
/// A Hugging Face hub on 127.0.0.1 for tests (no test touches the internet), serving model repositories from local
/// directories as the hub serves them: <c>GET /api/models/{repo}/revision/{rev}?blobs=true</c> (the commit and every file
/// with its size and git blob id, LFS files with their sha256) and <c>GET /{repo}/resolve/{rev}/{file}</c> with
/// <c>X-Repo-Commit</c> and <c>ETag</c>; LFS files (safetensors, bin, SentencePiece models) redirect to a second server
/// on another port — another origin, as the hub's CDN is — with <c>X-Linked-Etag</c> and <c>X-Linked-Size</c>. Both
/// honour <c>Range: bytes=N-</c>. It records every request, and can require a token, drop a file's connection after N
/// bytes, or serve a file with one byte changed.
/// </summary>
internal sealed class HubTestServer : IDisposable
{
    /// <summary>The commit every repository's <c>main</c> is at.</summary>
    public const string Commit = "5f1c3ab2e4d6078891a2b3c4d5e6f708192a3b4c";

    private static readonly string[] LfsExtensions = [".safetensors", ".bin", ".model"];
    private readonly HttpListener hub;
    private readonly HttpListener cdn;
    private readonly Dictionary<string, string> repos = new(StringComparer.Ordinal);

    public HubTestServer()
    {
        (hub, Endpoint) = Listen();
        (cdn, CdnEndpoint) = Listen();
        _ = Serve(hub, HandleHub);
        _ = Serve(cdn, HandleCdn);
    }

    /// <summary>The hub's base URL, e.g. http://127.0.0.1:41234.</summary>
    public string Endpoint { get; }

    /// <summary>The CDN's base URL (another port: another origin).</summary>
    public string CdnEndpoint { get; }

    /// <summary>When set, the hub answers 401 to requests without <c>Authorization: Bearer</c> this token.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>Every request, in arrival order.</summary>
    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>File name → bytes after which the next transfer of that file is cut (each entry is used once).</summary>
    public ConcurrentDictionary<string, long> DropAfter { get; } = new(StringComparer.Ordinal);

    /// <summary>Files sent with one byte changed (the listing keeps the true hashes).</summary>
    public ConcurrentDictionary<string, bool> Corrupt { get; } = new(StringComparer.Ordinal);

    /// <summary>Files whose resolve answer names another blob (ETag / X-Linked-Etag) than the listing.</summary>
    public ConcurrentDictionary<string, bool> WrongEtag { get; } = new(StringComparer.Ordinal);

    /// <summary>Files listed without blob id or LFS hash (as the API lists them without ?blobs=true).</summary>
    public ConcurrentDictionary<string, bool> NoHash { get; } = new(StringComparer.Ordinal);

    /// <summary>Files whose transfers pause this long halfway (so that two downloads overlap).</summary>
    public ConcurrentDictionary<string, TimeSpan> Pause { get; } = new(StringComparer.Ordinal);

    /// <summary>Serves <paramref name="directory"/> (recursively) as the repository <paramref name="repo"/>.</summary>
    public HubTestServer Add(string repo, string directory)
    {
        repos[repo] = directory;
        return this;
    }

    /// <summary>Requests to the files API.</summary>
    public int ApiRequests => Requests.Count(r => r.Path.StartsWith("/api/", StringComparison.Ordinal));

    /// <summary>Requests for file contents (hub resolve and CDN).</summary>
    public int FileRequests => Requests.Count(r => !r.Path.StartsWith("/api/", StringComparison.Ordinal));

    /// <summary>The requests that transferred <paramref name="file"/> (hub resolve and CDN).</summary>
    public IEnumerable<Request> RequestsFor(string file) => Requests.Where(r => r.File == file);

    /// <summary>The sha256 of a file's bytes, lower-case hex.</summary>
    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>The git blob id of a file's bytes: sha1 of "blob &lt;size&gt;\0" + bytes.</summary>
    public static string GitBlobId(byte[] bytes) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {bytes.Length}\0"), .. bytes]));

    /// <summary>True for the files the server keeps in LFS.</summary>
    public static bool IsLfs(string name) => LfsExtensions.Any(e => name.EndsWith(e, StringComparison.Ordinal));

    public void Dispose()
    {
        hub.Close();
        cdn.Close();
    }

    private static (HttpListener, string) Listen()
    {
        for (int attempt = 0; ; attempt++)
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var listener = new HttpListener();
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                listener.Start();
                return (listener, $"http://127.0.0.1:{port}");
            }
            catch (HttpListenerException) when (attempt < 10)
            {
                listener.Close(); // the port was taken meanwhile
            }
        }
    }

    private static async Task Serve(HttpListener listener, Action<HttpListenerContext> handle)
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // closed
            }
            _ = Task.Run(() =>
            {
                try
                {
                    handle(context);
                }
                catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
                {
                    // the client went away
                }
            });
        }
    }

    private void HandleHub(HttpListenerContext context)
    {
        string path = context.Request.Url!.AbsolutePath;
        string[] parts = path.Trim('/').Split('/').Select(Uri.UnescapeDataString).ToArray();
        bool api = parts is ["api", "models", _, _, "revision", _];
        bool resolve = parts.Length >= 5 && parts[2] == "resolve";
        string? file = resolve ? string.Join('/', parts[4..]) : null;
        Requests.Enqueue(new Request(path, context.Request.Headers["Authorization"], context.Request.Headers["Range"], file, Cdn: false));

        var response = context.Response;
        if (RequiredToken is not null && context.Request.Headers["Authorization"] != "Bearer " + RequiredToken)
        {
            Refuse(response, 401, "RepoNotFound", "Invalid credentials in Authorization header");
            return;
        }
        if (!api && !resolve)
        {
            Refuse(response, 404, "", "Not found");
            return;
        }
        string repo = api ? $"{parts[2]}/{parts[3]}" : $"{parts[0]}/{parts[1]}";
        string revision = api ? parts[5] : parts[3];
        if (!repos.TryGetValue(repo, out string? directory))
        {
            Refuse(response, 404, "RepoNotFound", "Repository not found");
            return;
        }
        if (revision is not ("main" or Commit))
        {
            Refuse(response, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return;
        }
        if (api)
        {
            Send(response, 200, Encoding.UTF8.GetBytes(Listing(repo, directory, NoHash).ToJsonString()), "application/json");
            return;
        }
        string full = Path.Combine(directory, file!);
        if (!File.Exists(full))
        {
            Refuse(response, 404, "EntryNotFound", $"{file} does not exist on \"{revision}\"");
            return;
        }
        byte[] bytes = File.ReadAllBytes(full);
        response.Headers["X-Repo-Commit"] = Commit;
        if (IsLfs(file!))
        {
            string sha = Sha256(bytes);
            response.Headers["X-Linked-Etag"] = $"\"{(WrongEtag.ContainsKey(file!) ? Sha256([.. bytes, 0]) : sha)}\"";
            response.Headers["X-Linked-Size"] = bytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
            response.Headers["Location"] = $"{CdnEndpoint}/repos/{sha}?file={Uri.EscapeDataString(file!)}&repo={Uri.EscapeDataString(repo)}";
            response.StatusCode = 302;
            response.Close();
            return;
        }
        response.Headers["ETag"] = $"\"{GitBlobId(WrongEtag.ContainsKey(file!) ? [.. bytes, 0] : bytes)}\"";
        SendFile(context, file!, bytes);
    }

    private void HandleCdn(HttpListenerContext context)
    {
        string file = context.Request.QueryString["file"] ?? "";
        string repo = context.Request.QueryString["repo"] ?? "";
        Requests.Enqueue(new Request(context.Request.Url!.AbsolutePath, context.Request.Headers["Authorization"], context.Request.Headers["Range"], file, Cdn: true));
        if (!repos.TryGetValue(repo, out string? directory) || !File.Exists(Path.Combine(directory, file)))
        {
            Refuse(context.Response, 404, "", "no such object");
            return;
        }
        SendFile(context, file, File.ReadAllBytes(Path.Combine(directory, file)));
    }

    // The file from the Range's start (200 without one, 206 with one, 416 past the end), cut or corrupted when asked.
    private void SendFile(HttpListenerContext context, string file, byte[] bytes)
    {
        var response = context.Response;
        if (Corrupt.ContainsKey(file))
        {
            bytes = (byte[])bytes.Clone();
            bytes[bytes.Length / 2] ^= 0x5a;
        }
        long start = 0;
        string? range = context.Request.Headers["Range"];
        if (range is not null)
        {
            start = long.Parse(range["bytes=".Length..].TrimEnd('-'), System.Globalization.CultureInfo.InvariantCulture);
            if (start >= bytes.Length)
            {
                response.Headers["Content-Range"] = $"bytes */{bytes.Length}";
                Send(response, 416, [], "text/plain");
                return;
            }
            response.Headers["Content-Range"] = $"bytes {start}-{bytes.Length - 1}/{bytes.Length}";
        }
        response.Headers["Accept-Ranges"] = "bytes";
        response.StatusCode = range is null ? 200 : 206;
        response.ContentType = "application/octet-stream";
        response.ContentLength64 = bytes.Length - start;
        if (DropAfter.TryRemove(file, out long cut))
        {
            response.OutputStream.Write(bytes, (int)start, (int)Math.Min(cut, bytes.Length - start));
            response.OutputStream.Flush();
            response.Abort(); // the connection drops mid-body
            return;
        }
        if (Pause.TryGetValue(file, out TimeSpan pause))
        {
            int half = (int)((bytes.Length - start) / 2);
            response.OutputStream.Write(bytes, (int)start, half);
            response.OutputStream.Flush();
            Thread.Sleep(pause);
            start += half;
        }
        response.OutputStream.Write(bytes, (int)start, (int)(bytes.Length - start));
        response.Close();
    }

    // What the hub's model_info with files_metadata returns, for the files of the directory.
    private static JsonObject Listing(string repo, string directory, ConcurrentDictionary<string, bool> noHash)
    {
        var siblings = new JsonArray();
        foreach (string full in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            string name = Path.GetRelativePath(directory, full).Replace('\\', '/');
            byte[] bytes = File.ReadAllBytes(full);
            var entry = new JsonObject { ["rfilename"] = name, ["size"] = bytes.Length };
            if (noHash.ContainsKey(name))
            {
                siblings.Add(entry); // the name and size alone
                continue;
            }
            if (IsLfs(name))
            {
                string pointer = $"version https://git-lfs.github.com/spec/v1\noid sha256:{Sha256(bytes)}\nsize {bytes.Length}\n";
                entry["blobId"] = GitBlobId(Encoding.ASCII.GetBytes(pointer));
                entry["lfs"] = new JsonObject { ["sha256"] = Sha256(bytes), ["size"] = bytes.Length, ["pointerSize"] = pointer.Length };
            }
            else entry["blobId"] = GitBlobId(bytes);
            siblings.Add(entry);
        }
        return new JsonObject { ["id"] = repo, ["modelId"] = repo, ["sha"] = Commit, ["private"] = false, ["siblings"] = siblings };
    }

    private static void Refuse(HttpListenerResponse response, int status, string code, string message)
    {
        if (code.Length > 0) response.Headers["X-Error-Code"] = code;
        response.Headers["X-Error-Message"] = message;
        Send(response, status, Encoding.UTF8.GetBytes($"{{\"error\":\"{message}\"}}"), "application/json");
    }

    private static void Send(HttpListenerResponse response, int status, byte[] body, string type)
    {
        response.StatusCode = status;
        response.ContentType = type;
        response.ContentLength64 = body.Length;
        response.OutputStream.Write(body);
        response.Close();
    }

    /// <summary>A request as the server saw it.</summary>
    public sealed record Request(string Path, string? Authorization, string? Range, string? File, bool Cdn);
}
