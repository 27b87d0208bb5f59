namespace SharpTune.Hub;

/// <summary>What <see cref="HubClient"/> reports while it resolves and downloads a model.</summary>
/// <param name="Model">The model being resolved.</param>
public abstract record HubEvent(HubModelId Model);

/// <summary>The revision is resolved to <paramref name="Commit"/>; <paramref name="FromCache"/> when no request was made (or could be).</summary>
public sealed record HubResolvedEvent(HubModelId Model, string Commit, bool FromCache) : HubEvent(Model);

/// <summary>A file's download starts (at <paramref name="ResumeFrom"/> bytes when a partial download is continued).</summary>
public sealed record HubFileStartedEvent(HubModelId Model, string File, long Size, long ResumeFrom) : HubEvent(Model);

/// <summary><paramref name="Bytes"/> of <paramref name="Size"/> bytes of a file are on disk.</summary>
public sealed record HubFileProgressEvent(HubModelId Model, string File, long Bytes, long Size) : HubEvent(Model);

/// <summary>A file is in the snapshot: downloaded now, or already in the cache.</summary>
public sealed record HubFileFinishedEvent(HubModelId Model, string File, long Size, bool Downloaded) : HubEvent(Model);

/// <summary>A transfer failed and is retried from <paramref name="ResumeFrom"/> bytes with an HTTP Range.</summary>
public sealed record HubRetryEvent(HubModelId Model, string File, long ResumeFrom, string Reason) : HubEvent(Model);

/// <summary>The hub could not be reached; the cached snapshot of the same revision is used.</summary>
public sealed record HubCacheFallbackEvent(HubModelId Model, string Commit, string Reason) : HubEvent(Model);
