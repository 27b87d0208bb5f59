using System.Text.RegularExpressions;

namespace SharpTune.Hub;

/// <summary>
/// A model on the Hugging Face hub as <c>--model</c> names it: <c>org/name</c>, optionally <c>@revision</c> (a branch,
/// a tag or a commit hash; <c>main</c> when omitted).
/// </summary>
/// <param name="Repo">The repository id, <c>org/name</c>.</param>
/// <param name="Revision">The branch, tag or commit.</param>
public sealed partial record HubModelId(string Repo, string Revision)
{
    /// <summary>The revision used when none is given.</summary>
    public const string DefaultRevision = "main";

    /// <summary>The hub's own rule for a name part: letters, digits, '-', '_', '.', no '--' or '..', at most 96 characters.</summary>
    [GeneratedRegex(@"^(?<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95})(@(?<revision>[^@\s]+))?$")]
    private static partial Regex Pattern();

    [GeneratedRegex(@"^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();

    /// <summary>True when <see cref="Revision"/> is a full commit hash (such a snapshot never changes).</summary>
    public bool IsCommit => IsCommitHash(Revision);

    /// <summary>True for a full (40 hex digit, lower-case) git commit hash.</summary>
    public static bool IsCommitHash(string value) => CommitPattern().IsMatch(value);

    /// <summary>
    /// Reads <c>org/name[@revision]</c>; false for anything else (a path such as <c>./x</c>, <c>/abs</c>, <c>a/b/c</c>,
    /// a bare name, or a revision with '..' segments or that is empty).
    /// </summary>
    public static bool TryParse(string? value, out HubModelId id)
    {
        id = null!;
        if (value is null) return false;
        Match match = Pattern().Match(value);
        if (!match.Success) return false;
        string repo = match.Groups["repo"].Value;
        if (repo.Contains("--", StringComparison.Ordinal) || repo.Contains("..", StringComparison.Ordinal)) return false;
        string revision = match.Groups["revision"].Success ? match.Groups["revision"].Value : DefaultRevision;
        // The revision becomes a file name under refs/ (refs/pr/1 is a real one): no empty, '.' or '..' segments, no '\'.
        if (revision.Contains('\\') || revision.Split('/').Any(part => part is "" or "." or "..")) return false;
        id = new HubModelId(repo, revision);
        return true;
    }

    /// <summary>Reads <c>org/name[@revision]</c> or throws a <see cref="SharpTuneException"/> saying what is expected.</summary>
    public static HubModelId Parse(string value) => TryParse(value, out var id) ? id
        : throw new SharpTuneException($"'{value}' is not a hub model id; expected org/name or org/name@revision.");

    /// <summary>
    /// The hub model and commit of a snapshot directory of the hub cache (<c>…/models--org--name/snapshots/&lt;commit&gt;</c>,
    /// as <see cref="HubClient"/> and huggingface_hub lay it out); false for any other path.
    /// </summary>
    public static bool TryFromSnapshot(string? directory, out HubModelId id)
    {
        id = null!;
        if (string.IsNullOrEmpty(directory)) return false;
        var snapshot = new DirectoryInfo(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)));
        if (!IsCommitHash(snapshot.Name) || snapshot.Parent is not { Name: "snapshots", Parent: { } folder }) return false;
        string[] parts = folder.Name.Split("--");
        return parts is ["models", var org, var name] && TryParse($"{org}/{name}@{snapshot.Name}", out id);
    }

    /// <summary>
    /// How a run records the model it was made from: <c>org/name@commit</c> for a snapshot of the hub cache (the same
    /// model on every machine, wherever its cache is), else the full path of <paramref name="directory"/>.
    /// </summary>
    public static string NameOrPath(string directory) =>
        TryFromSnapshot(directory, out HubModelId id) ? id.ToString() : Path.GetFullPath(directory);

    /// <summary>The cache folder name of the repository, as huggingface_hub names it: <c>models--org--name</c>.</summary>
    public string CacheFolderName => "models--" + Repo.Replace("/", "--", StringComparison.Ordinal);

    /// <summary><c>org/name@revision</c>.</summary>
    public override string ToString() => $"{Repo}@{Revision}";
}
