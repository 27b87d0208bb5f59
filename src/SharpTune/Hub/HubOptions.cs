namespace SharpTune.Hub;

/// <summary>
/// Where and how <see cref="HubClient"/> reaches the Hugging Face hub. <see cref="FromEnvironment"/> reads the variables
/// huggingface_hub reads, so that both share one cache.
/// </summary>
public sealed record HubOptions
{
    /// <summary>The public hub.</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The hub's base URL (<c>HF_ENDPOINT</c>); default <see cref="DefaultEndpoint"/>.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>
    /// The hub cache (<c>HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>), holding
    /// <c>models--org--name/{blobs,snapshots,refs}</c>.
    /// </summary>
    public string CacheDirectory { get; init; } = DefaultCacheDirectory(_ => null);

    /// <summary>A user access token sent as <c>Authorization: Bearer</c> to the hub (never to another host); never printed.</summary>
    public string? Token { get; init; }

    /// <summary>Never touch the network: only what the cache holds (<c>HF_HUB_OFFLINE=1</c>).</summary>
    public bool Offline { get; init; }

    /// <summary>How long a request may wait for the server's next bytes before it counts as failed. Default 30 s.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Attempts per file when the connection fails mid-download; each retry resumes with an HTTP Range. Default 5.</summary>
    public int Attempts { get; init; } = 5;

    /// <summary>
    /// The options from the environment, as huggingface_hub reads it: <c>HF_ENDPOINT</c>; <c>HF_HUB_CACHE</c> (or the
    /// legacy <c>HUGGINGFACE_HUB_CACHE</c>), else <c>HF_HOME</c>/hub, else <c>$XDG_CACHE_HOME</c>/huggingface/hub, else
    /// ~/.cache/huggingface/hub; <c>HF_HUB_OFFLINE</c> (or <c>TRANSFORMERS_OFFLINE</c>) set to 1, ON, YES or TRUE;
    /// <c>HF_TOKEN</c>, else the token file <c>huggingface-cli login</c> writes (<c>HF_TOKEN_PATH</c>, default <c>$HF_HOME/token</c>).
    /// </summary>
    /// <param name="variable">Reads a variable; default <see cref="Environment.GetEnvironmentVariable(string)"/>.</param>
    public static HubOptions FromEnvironment(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        string? Get(string name) => variable(name) is { Length: > 0 } value ? value : null;
        string home = HfHome(Get);
        string? token = Get("HF_TOKEN") ?? Get("HUGGING_FACE_HUB_TOKEN");
        if (token is null)
        {
            string tokenFile = ExpandHome(Get("HF_TOKEN_PATH") ?? Path.Combine(home, "token"));
            if (File.Exists(tokenFile) && File.ReadAllText(tokenFile).Trim() is { Length: > 0 } stored) token = stored;
        }
        return new HubOptions
        {
            Endpoint = (Get("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/'),
            CacheDirectory = DefaultCacheDirectory(Get),
            Token = token,
            Offline = IsTrue(Get("HF_HUB_OFFLINE") ?? Get("TRANSFORMERS_OFFLINE")),
        };
    }

    /// <summary>Checks the options; errors name the property.</summary>
    public HubOptions Validate()
    {
        if (!Uri.TryCreate(Endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new SharpTuneException($"HubOptions.Endpoint (HF_ENDPOINT): '{Endpoint}' is not an http(s) URL.");
        if (string.IsNullOrWhiteSpace(CacheDirectory)) throw new SharpTuneException("HubOptions.CacheDirectory (HF_HUB_CACHE): empty.");
        if (Timeout <= TimeSpan.Zero) throw new SharpTuneException($"HubOptions.Timeout must be positive, got {Timeout}.");
        if (Attempts < 1) throw new SharpTuneException($"HubOptions.Attempts must be at least 1, got {Attempts}.");
        if (Token is not null && (Token.Length == 0 || Token.Any(char.IsControl)))
            throw new SharpTuneException("HubOptions.Token (HF_TOKEN): empty or contains control characters."); // the token itself is never shown
        return this;
    }

    /// <summary>The options without the token's value (a record would print it).</summary>
    public override string ToString() =>
        $"HubOptions {{ Endpoint = {Endpoint}, CacheDirectory = {CacheDirectory}, Token = {(Token is null ? "none" : "set")}, Offline = {Offline}, Timeout = {Timeout}, Attempts = {Attempts} }}";

    private static string DefaultCacheDirectory(Func<string, string?> get) =>
        ExpandHome(get("HF_HUB_CACHE") ?? get("HUGGINGFACE_HUB_CACHE") ?? Path.Combine(HfHome(get), "hub"));

    private static string HfHome(Func<string, string?> get) => ExpandHome(get("HF_HOME") ?? Path.Combine(
        get("XDG_CACHE_HOME") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "huggingface"));

    private static string ExpandHome(string path) => path == "~" || path.StartsWith("~/", StringComparison.Ordinal)
        ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path.TrimStart('~').TrimStart('/'))
        : path;

    private static bool IsTrue(string? value) => value?.ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";
}
