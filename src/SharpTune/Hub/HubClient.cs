using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Checkpoints;

namespace SharpTune.Hub;

/// <summary>A file of a hub revision as the hub's API lists it.</summary>
/// <param name="Name">Path in the repository.</param>
/// <param name="Size">Bytes of the file (of the content, for an LFS file).</param>
/// <param name="Etag">The blob's name in the cache: the LFS sha256, or the git blob id of a file kept in git.</param>
/// <param name="IsLfs">True when the content is in LFS (<see cref="Etag"/> is then its sha256).</param>
public sealed record HubFile(string Name, long Size, string Etag, bool IsLfs);

/// <summary>A model directory resolved from the hub: <see cref="Path"/> is <c>snapshots/&lt;commit&gt;</c> in the cache.</summary>
/// <param name="Model">The model as asked for.</param>
/// <param name="Commit">The commit the revision resolved to.</param>
/// <param name="Path">The snapshot directory; <see cref="HfModelDirectory.Open"/> reads it as any local model directory.</param>
/// <param name="Files">The files of the snapshot SharpTune uses.</param>
/// <param name="Downloaded">How many of them were downloaded now (0: all came from the cache).</param>
public sealed record HubSnapshot(HubModelId Model, string Commit, string Path, IReadOnlyList<string> Files, int Downloaded);

/// <summary>
/// Downloads models from the Hugging Face hub into the cache layout huggingface_hub uses, so that Python and SharpTune
/// share one cache: <c>&lt;cache&gt;/models--org--name/blobs/&lt;etag&gt;</c> (the LFS sha256, or the git blob id),
/// <c>snapshots/&lt;commit&gt;/&lt;file&gt;</c> (a relative symbolic link to the blob; a copy where links cannot be
/// made) and <c>refs/&lt;revision&gt;</c> (the commit a branch or tag pointed to). Only the files SharpTune reads are
/// fetched (config.json, the tokenizer's files, safetensors before pytorch_model.bin, the shards an index names). Every
/// download is checked against the hub's listing — size, and the sha256 of LFS files (the git blob id of others) — in
/// a <c>blobs/&lt;etag&gt;.incomplete</c> file that becomes the blob only when it verifies (a mismatch deletes it); a
/// broken transfer is resumed with an HTTP Range, in the same call or the next. With <see cref="HubOptions.Offline"/>
/// nothing is requested; when the hub cannot be reached, a complete cached snapshot of the revision is used.
/// The token goes to the hub's host only, and appears in no message.
/// </summary>
public sealed class HubClient : IDisposable
{
    private const int BufferSize = 1 << 16;
    private readonly HttpClient http;
    private readonly Uri endpoint;

    /// <summary>Creates a client; <paramref name="options"/> default to <see cref="HubOptions.FromEnvironment"/>.</summary>
    public HubClient(HubOptions? options = null)
    {
        Options = (options ?? HubOptions.FromEnvironment()).Validate();
        endpoint = new Uri(Options.Endpoint.TrimEnd('/') + "/");
        // Redirects are followed by hand: the token must not follow one to another host (the LFS CDN).
        http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None, ConnectTimeout = Options.Timeout,
        }) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("sharptune", typeof(HubClient).Assembly.GetName().Version?.ToString() ?? "0"));
    }

    /// <summary>The validated options.</summary>
    public HubOptions Options { get; }

    /// <summary>The repository's folder in the cache, <c>&lt;cache&gt;/models--org--name</c>.</summary>
    public string RepositoryFolder(HubModelId model) => Path.Combine(Options.CacheDirectory, model.CacheFolderName);

    /// <summary>Downloads (or finds in the cache) what SharpTune needs of <paramref name="model"/>; see <see cref="DownloadAsync"/>.</summary>
    public HubSnapshot Download(HubModelId model, IProgress<HubEvent>? progress = null, CancellationToken cancellationToken = default) =>
        DownloadAsync(model, progress, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// Resolves <paramref name="model"/>'s revision and returns its snapshot directory with config.json, the weights
    /// and the tokenizer files in it. A commit whose snapshot is complete in the cache, and any revision in offline mode,
    /// make no request. Errors are <see cref="SharpTuneException"/>s naming the repository, the revision and the file.
    /// </summary>
    public async Task<HubSnapshot> DownloadAsync(HubModelId model, IProgress<HubEvent>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.IsCommit && Cached(model, model.Revision, out _) is { } pinned)
        {
            progress?.Report(new HubResolvedEvent(model, pinned.Commit, FromCache: true));
            return pinned;
        }
        if (Options.Offline)
            return FromCache(model, progress, "HF_HUB_OFFLINE is set, so the hub is not asked", fallback: false);

        string commit;
        Dictionary<string, HubFile?> listing;
        try
        {
            (commit, listing) = await RevisionAsync(model, cancellationToken).ConfigureAwait(false);
        }
        catch (TransientException e)
        {
            return FromCache(model, progress, $"the hub at {Options.Endpoint} cannot be reached ({e.Message})", fallback: true);
        }
        progress?.Report(new HubResolvedEvent(model, commit, FromCache: false));

        List<string> names = HubFiles.Select(listing.Keys.ToHashSet(StringComparer.Ordinal), out string missing)
            ?? throw new SharpTuneException($"{model} (commit {commit}): the repository has no {missing}; SharpTune needs config.json and PyTorch weights.");
        string snapshot = SnapshotFolder(model, commit);
        int downloaded = 0;
        foreach (string name in names)
            if (await FetchAsync(model, commit, Listed(model, commit, listing, name), progress, cancellationToken).ConfigureAwait(false)) downloaded++;
        if (names.FirstOrDefault(HubFiles.IsIndex) is { } indexName)
        {
            foreach (string shard in SafeTensorsIndex.Read(Path.Combine(snapshot, indexName)).Shards)
            {
                if (!listing.ContainsKey(shard))
                    throw new SharpTuneException($"{model} (commit {commit}): {indexName} names the shard {shard}, which the repository does not have.");
                if (await FetchAsync(model, commit, Listed(model, commit, listing, shard), progress, cancellationToken).ConfigureAwait(false)) downloaded++;
                names.Add(shard);
            }
        }
        if (model.Revision != commit) WriteRef(model, commit);
        return new HubSnapshot(model, commit, snapshot, names, downloaded);
    }

    // The commit of the revision and its files, from GET /api/models/{repo}/revision/{revision}?blobs=true (the hub's
    // model_info with files_metadata). A TransientException when the hub cannot be reached.
    private async Task<(string Commit, Dictionary<string, HubFile?> Listing)> RevisionAsync(HubModelId model, CancellationToken cancellationToken)
    {
        var uri = new Uri(endpoint, $"api/models/{model.Repo}/revision/{Uri.EscapeDataString(model.Revision)}?blobs=true");
        JsonNode? root;
        try
        {
            using HttpResponseMessage response = await SendAsync(uri, 0, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode) throw Refused(response, model, null, uri);
            using var stall = Stall(cancellationToken);
            string text = await response.Content.ReadAsStringAsync(stall.Token).ConfigureAwait(false);
            root = JsonNode.Parse(text);
        }
        catch (Exception e) when (IsTransient(e, cancellationToken))
        {
            throw new TransientException(Reason(e), e);
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{model}: the hub's answer to {uri} is not valid JSON ({e.Message}).", e);
        }
        string where = $"{model}: the hub's answer to {uri}";
        string commit = root?["sha"] is JsonValue sha && sha.TryGetValue(out string? s) && HubModelId.IsCommitHash(s) ? s
            : throw new SharpTuneException($"{where} has no 40-digit commit hash in \"sha\".");
        if (root!["siblings"] is not JsonArray siblings) throw new SharpTuneException($"{where} has no \"siblings\" list of files.");
        var listing = new Dictionary<string, HubFile?>(StringComparer.Ordinal);
        for (int i = 0; i < siblings.Count; i++)
        {
            if (siblings[i] is not JsonObject entry || entry["rfilename"] is not JsonValue nameValue || !nameValue.TryGetValue(out string? name))
                throw new SharpTuneException($"{where}: siblings[{i}] has no \"rfilename\".");
            listing[name] = ParseFile(entry, name);
        }
        return (commit, listing);
    }

    // A needed file with what verifies it; the hub lists size and hash with ?blobs=true, and nothing unverifiable is kept.
    private static HubFile Listed(HubModelId model, string commit, Dictionary<string, HubFile?> listing, string name) =>
        listing[name] ?? throw new SharpTuneException($"{model} (commit {commit}): {name}: the hub's file listing gives no size and hash " +
            "(blobId and size, or lfs.sha256 and lfs.size) to check the download against.");

    // A listed file with what verifies it; null when the listing lacks size or hash (such a file is refused if needed).
    private static HubFile? ParseFile(JsonObject entry, string name)
    {
        static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue(out string? t) ? t : null;
        static long? Number(JsonNode? node) => node is JsonValue v && v.TryGetValue(out long n) && n >= 0 ? n : null;
        if (entry["lfs"] is JsonObject lfs)
            return Text(lfs["sha256"]) is { } sha256 && IsHex(sha256, 64) && Number(lfs["size"]) is { } lfsSize ? new HubFile(name, lfsSize, sha256, true) : null;
        return Text(entry["blobId"]) is { } blob && (IsHex(blob, 40) || IsHex(blob, 64)) && Number(entry["size"]) is { } size ? new HubFile(name, size, blob, false) : null;
    }

    private static bool IsHex(string value, int length) => value.Length == length && value.All(char.IsAsciiHexDigitLower);

    // Puts one file into the snapshot; true when it was downloaded (false: its blob was in the cache).
    private async Task<bool> FetchAsync(HubModelId model, string commit, HubFile file, IProgress<HubEvent>? progress, CancellationToken cancellationToken)
    {
        string blobs = Path.Combine(RepositoryFolder(model), "blobs");
        string blob = Path.Combine(blobs, file.Etag);
        bool downloaded = false;
        if (!IsComplete(blob, file.Size))
        {
            Directory.CreateDirectory(blobs);
            using FileStream held = await LockAsync(model, file, cancellationToken).ConfigureAwait(false);
            if (!IsComplete(blob, file.Size))
            {
                await DownloadBlobAsync(model, commit, file, blob, progress, cancellationToken).ConfigureAwait(false);
                downloaded = true;
            }
        }
        Link(SnapshotFolder(model, commit), file.Name, blob, file.Size);
        progress?.Report(new HubFileFinishedEvent(model, file.Name, file.Size, downloaded));
        return downloaded;
    }

    private static bool IsComplete(string blob, long size) => File.Exists(blob) && new FileInfo(blob).Length == size;

    // The blob's lock where huggingface_hub takes it (<cache>/.locks/models--org--name/<etag>.lock): both take an
    // exclusive flock on it, so two downloaders of one blob — SharpTune or Python — take turns.
    private async Task<FileStream> LockAsync(HubModelId model, HubFile file, CancellationToken cancellationToken)
    {
        string locks = Path.Combine(Options.CacheDirectory, ".locks", model.CacheFolderName);
        Directory.CreateDirectory(locks);
        string path = Path.Combine(locks, file.Etag + ".lock");
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
            }
            catch (IOException) when (!cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(200, cancellationToken).ConfigureAwait(false); // another process is downloading this blob
            }
        }
    }

    private async Task DownloadBlobAsync(HubModelId model, string commit, HubFile file, string blob, IProgress<HubEvent>? progress, CancellationToken cancellationToken)
    {
        string partial = blob + ".incomplete";
        var uri = new Uri(endpoint, $"{model.Repo}/resolve/{commit}/{string.Join('/', file.Name.Split('/').Select(Uri.EscapeDataString))}");
        string what = $"{model}: {file.Name}";
        for (int attempt = 1; ; attempt++)
        {
            long have = File.Exists(partial) ? new FileInfo(partial).Length : 0;
            if (have > file.Size)
            {
                File.Delete(partial); // longer than the file: not a prefix of it
                have = 0;
            }
            try
            {
                if (have < file.Size) await TransferAsync(model, commit, file, uri, partial, have, progress, cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (Exception e) when (IsTransient(e, cancellationToken))
            {
                long kept = File.Exists(partial) ? new FileInfo(partial).Length : 0;
                if (attempt >= Options.Attempts)
                    throw new SharpTuneException($"{what} (from {uri}): the download failed {attempt} time(s), last: {Reason(e)}. " +
                        $"The {kept} of {file.Size} bytes received are kept in {partial}; the next attempt resumes from there.", e);
                progress?.Report(new HubRetryEvent(model, file.Name, kept, Reason(e)));
            }
        }
        Verify(what, file, partial);
        File.Move(partial, blob, overwrite: true);
    }

    // One request for the rest of the file, appended to the partial file.
    private async Task TransferAsync(HubModelId model, string commit, HubFile file, Uri uri, string partial, long have, IProgress<HubEvent>? progress, CancellationToken cancellationToken)
    {
        using HttpResponseMessage response = await SendAsync(uri, have, cancellationToken, answer => CheckHubAnswer(model, commit, file, answer)).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            File.Delete(partial); // the server disowns the partial file; start over on the next attempt
            throw new TransientException($"the server refused to resume at byte {have} (416)");
        }
        if (!response.IsSuccessStatusCode) throw Refused(response, model, file.Name, uri);
        bool resumed = response.StatusCode == HttpStatusCode.PartialContent;
        if (resumed && response.Content.Headers.ContentRange?.From != have)
            throw new SharpTuneException($"{model}: {file.Name}: asked {uri} for the bytes from {have} on, got the range {response.Content.Headers.ContentRange}.");
        if (!resumed) have = 0; // the server ignored the Range: the whole file comes again
        progress?.Report(new HubFileStartedEvent(model, file.Name, file.Size, have));

        using var output = new FileStream(partial, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, BufferSize);
        using Stream body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[BufferSize];
        while (true)
        {
            int read;
            using (var stall = Stall(cancellationToken))
            {
                try
                {
                    read = await body.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                    await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    throw new TransientException(e is OperationCanceledException ? $"no data for {Options.Timeout.TotalSeconds:F0} s" : e.Message, e);
                }
            }
            if (read == 0) break;
            if (have + read > file.Size)
                throw new SharpTuneException($"{model}: {file.Name}: {uri} sent more than the {file.Size} bytes the hub lists.");
            await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            have += read;
            progress?.Report(new HubFileProgressEvent(model, file.Name, have, file.Size));
        }
        if (have < file.Size) throw new TransientException($"the connection closed after {have} of {file.Size} bytes");
    }

    // The hub's own answer (before any redirect to the CDN) names the commit and the blob it serves: they must be the
    // listing's, or the file would land under the wrong name.
    private static void CheckHubAnswer(HubModelId model, string commit, HubFile file, HttpResponseMessage answer)
    {
        if ((int)answer.StatusCode >= 400) return; // reported as a refusal
        string? Header(string name) => answer.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;
        if (Header("X-Repo-Commit") is { } served && served != commit)
            throw new SharpTuneException($"{model}: {file.Name}: asked for commit {commit}, the hub answered with commit {served}.");
        string? etag = Header("X-Linked-Etag") ?? Header("ETag");
        if (etag is not null && etag.StartsWith("W/", StringComparison.Ordinal)) etag = etag[2..];
        etag = etag?.Trim('"');
        if (etag is not null && etag != file.Etag)
            throw new SharpTuneException($"{model}: {file.Name}: the hub serves the blob {etag}, its file listing names {file.Etag}; nothing was downloaded.");
    }

    // Size, then the content hash the hub lists: sha256 for LFS files, the git blob id (sha1 of "blob <size>\0" + content) otherwise.
    private static void Verify(string what, HubFile file, string partial)
    {
        long length = new FileInfo(partial).Length;
        string actual;
        using (var stream = File.OpenRead(partial))
        {
            if (file.IsLfs) actual = Convert.ToHexStringLower(SHA256.HashData(stream));
            else
            {
                using var hash = file.Etag.Length == 64 ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
                hash.AppendData(Encoding.ASCII.GetBytes($"blob {length}\0"));
                var buffer = new byte[BufferSize];
                int read;
                while ((read = stream.Read(buffer)) > 0) hash.AppendData(buffer, 0, read);
                actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            }
        }
        if (length == file.Size && actual == file.Etag) return;
        File.Delete(partial);
        string kind = file.IsLfs ? "sha256" : "git blob id";
        throw new SharpTuneException(length != file.Size
            ? $"{what}: the download has {length} bytes, the hub lists {file.Size}; it was discarded (nothing was added to the cache)."
            : $"{what}: the {kind} of the download is {actual}, the hub lists {file.Etag}; it was discarded (nothing was added to the cache).");
    }

    // snapshots/<commit>/<name> → ../../blobs/<etag>, as huggingface_hub links it; a copy where links cannot be made.
    private static void Link(string snapshot, string name, string blob, long size)
    {
        string pointer = Path.Combine(snapshot, name);
        Directory.CreateDirectory(Path.GetDirectoryName(pointer)!);
        string target = Path.GetRelativePath(Path.GetDirectoryName(pointer)!, blob);
        var existing = new FileInfo(pointer);
        if (existing.Exists && (existing.LinkTarget == target || existing.LinkTarget is null && existing.Length == size)) return;
        string temporary = pointer + $".{Guid.NewGuid():N}.tmp";
        try
        {
            File.CreateSymbolicLink(temporary, target);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            File.Copy(blob, temporary); // e.g. Windows without the right to make links
        }
        File.Move(temporary, pointer, overwrite: true);
    }

    private string SnapshotFolder(HubModelId model, string commit) => Path.Combine(RepositoryFolder(model), "snapshots", commit);

    private string RefFile(HubModelId model) =>
        Path.Combine(RepositoryFolder(model), "refs", Path.Combine(model.Revision.Split('/')));

    private void WriteRef(HubModelId model, string commit)
    {
        string path = RefFile(model);
        if (File.Exists(path) && File.ReadAllText(path).Trim() == commit) return;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temporary = path + $".{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temporary, commit);
        File.Move(temporary, path, overwrite: true);
    }

    // The commit a cached branch or tag pointed to when it was last resolved online.
    private string? ReadRef(HubModelId model)
    {
        if (model.IsCommit) return model.Revision;
        string path = RefFile(model);
        return File.Exists(path) && File.ReadAllText(path).Trim() is var commit && HubModelId.IsCommitHash(commit) ? commit : null;
    }

    // The cached snapshot of a commit when it has everything SharpTune reads; else null and what is missing.
    private HubSnapshot? Cached(HubModelId model, string commit, out string missing)
    {
        string snapshot = SnapshotFolder(model, commit);
        missing = "config.json";
        if (!Directory.Exists(snapshot)) return null;
        var present = Directory.EnumerateFiles(snapshot).Where(File.Exists) // File.Exists drops dangling links
            .Select(f => Path.GetFileName(f)).ToHashSet(StringComparer.Ordinal);
        List<string>? names = HubFiles.Select(present, out missing);
        if (names is null) return null;
        if (names.FirstOrDefault(HubFiles.IsIndex) is { } index)
        {
            foreach (string shard in SafeTensorsIndex.Read(Path.Combine(snapshot, index)).Shards)
            {
                if (!File.Exists(Path.Combine(snapshot, shard)))
                {
                    missing = shard;
                    return null;
                }
                names.Add(shard);
            }
        }
        return new HubSnapshot(model, commit, snapshot, names, 0);
    }

    private HubSnapshot FromCache(HubModelId model, IProgress<HubEvent>? progress, string why, bool fallback)
    {
        string? commit = ReadRef(model);
        if (commit is null)
            throw new SharpTuneException($"{model}: {why}, and the hub cache has no snapshot of this revision " +
                $"(no {RefFile(model)}). Run once online, or give a local model directory.");
        HubSnapshot snapshot = Cached(model, commit, out string missing)
            ?? throw new SharpTuneException($"{model}: {why}, and the cached snapshot {SnapshotFolder(model, commit)} lacks {missing}. " +
                "Run once online, or give a local model directory.");
        if (fallback) progress?.Report(new HubCacheFallbackEvent(model, commit, why));
        progress?.Report(new HubResolvedEvent(model, commit, FromCache: true));
        return snapshot;
    }

    // GET with the token for the hub's own host, following redirects by hand (the token stays behind on another host).
    // onHubAnswer sees the first response, the hub's, whatever it is.
    private async Task<HttpResponseMessage> SendAsync(Uri uri, long from, CancellationToken cancellationToken, Action<HttpResponseMessage>? onHubAnswer = null)
    {
        for (int hop = 0; hop < 10; hop++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (from > 0) request.Headers.Range = new RangeHeaderValue(from, null);
            if (Options.Token is not null && Uri.Compare(uri, endpoint, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0)
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Options.Token);
            HttpResponseMessage response;
            using (var stall = Stall(cancellationToken))
            {
                try
                {
                    response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stall.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TransientException($"no answer for {Options.Timeout.TotalSeconds:F0} s", e);
                }
            }
            if (hop == 0 && onHubAnswer is not null)
            {
                try
                {
                    onHubAnswer(response);
                }
                catch
                {
                    response.Dispose();
                    throw;
                }
            }
            if ((int)response.StatusCode is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is { } location)
            {
                response.Dispose();
                uri = location.IsAbsoluteUri ? location : new Uri(uri, location);
                continue;
            }
            if ((int)response.StatusCode is 408 or 429 or >= 500)
            {
                string status = $"{(int)response.StatusCode} {response.ReasonPhrase}";
                response.Dispose();
                throw new TransientException($"the server answered {status}");
            }
            return response;
        }
        throw new SharpTuneException($"{uri}: more than 10 redirects.");
    }

    // A refusal (4xx) as a message naming the model, the revision, the file and the URL (never the token).
    private SharpTuneException Refused(HttpResponseMessage response, HubModelId model, string? file, Uri uri)
    {
        string code = response.Headers.TryGetValues("X-Error-Code", out var codes) ? codes.First() : "";
        string said = response.Headers.TryGetValues("X-Error-Message", out var messages) ? $" (the hub says: {messages.First()})" : "";
        string what = $"{model}{(file is null ? "" : ": " + file)}";
        string status = $"{(int)response.StatusCode} {response.ReasonPhrase}";
        return new SharpTuneException(response.StatusCode switch
        {
            HttpStatusCode.Unauthorized when Options.Token is null =>
                $"{what}: {uri} answered {status}{said}: the model is private or gated, or does not exist. Set HF_TOKEN to a token with access.",
            HttpStatusCode.Unauthorized => $"{what}: {uri} answered {status}{said}: the token (HF_TOKEN) was refused, or the model does not exist.",
            HttpStatusCode.Forbidden => $"{what}: {uri} answered {status}{said}: no access; a gated model needs its terms accepted on its hub page and a token (HF_TOKEN) of that account.",
            HttpStatusCode.NotFound when code == "RevisionNotFound" => $"{what}: the revision '{model.Revision}' does not exist ({uri} answered {status}){said}.",
            HttpStatusCode.NotFound when file is not null => $"{what}: not found ({uri} answered {status}){said}.",
            HttpStatusCode.NotFound => $"{what}: no such model or revision on {Options.Endpoint} ({uri} answered {status}){said}.",
            _ => $"{what}: {uri} answered {status}{said}.",
        });
    }

    private CancellationTokenSource Stall(CancellationToken cancellationToken)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        source.CancelAfter(Options.Timeout);
        return source;
    }

    private static bool IsTransient(Exception e, CancellationToken cancellationToken) =>
        e is TransientException or HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested);

    private static string Reason(Exception e) => e.InnerException is { } inner && e is HttpRequestException ? $"{e.Message} {inner.Message}" : e.Message;

    /// <inheritdoc />
    public void Dispose() => http.Dispose();

    // A failure worth another attempt: the connection, a stall, a 5xx.
    private sealed class TransientException(string message, Exception? inner = null) : Exception(message, inner);
}
