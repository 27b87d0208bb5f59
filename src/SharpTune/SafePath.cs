namespace SharpTune;

/// <summary>
/// The one check for a file name that was read from a file (a shard named by an index's <c>weight_map</c>, a file listed
/// in the packaged model's marker) before it is joined to the directory it must stay in.
/// </summary>
public static class SafePath
{
    /// <summary>
    /// The full path of <paramref name="relative"/> inside <paramref name="directory"/>. Refused, with a
    /// <see cref="SharpTuneException"/> naming <paramref name="source"/> and <paramref name="key"/>: an empty name, a
    /// rooted one (<c>/etc/passwd</c>, <c>C:\x</c>, <c>\\server\share</c>), one that climbs out with <c>..</c>, and one
    /// whose path goes through a symbolic link that resolves outside the directory. Links that stay inside are fine, and
    /// so are the links of a Hugging Face hub cache (<c>&lt;repo&gt;/snapshots/&lt;revision&gt;/x → ../../blobs/&lt;hash&gt;</c>),
    /// which may reach the repository's folder.
    /// </summary>
    /// <param name="directory">The directory the file must be in.</param>
    /// <param name="relative">The name as the file gave it.</param>
    /// <param name="source">The file the name was read from, for messages.</param>
    /// <param name="key">Where in that file (e.g. <c>weight_map.bert.pooler.dense.weight</c>), for messages.</param>
    public static string Within(string directory, string relative, string source, string key)
    {
        string Refuse(string why) => throw new SharpTuneException($"{source}: {key} names '{relative}', which {why}; only files inside {directory} are read.");
        if (string.IsNullOrEmpty(relative)) Refuse("is empty");
        if (relative.Contains('\0')) Refuse("contains a NUL character");
        // Both separators count, so that a Windows-style name cannot hide a rooted path or a '..' on Linux either.
        if (Path.IsPathRooted(relative) || relative[0] is '/' or '\\' || (relative.Length >= 2 && relative[1] == ':'))
            Refuse("is an absolute path");
        if (relative.Split('/', '\\').Any(part => part == ".."))
            Refuse("climbs out of the directory with '..'");

        string root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        string full = Path.GetFullPath(Path.Combine(root, relative));
        if (!IsInside(full, root)) Refuse("resolves outside the directory");

        // A hub cache snapshot links its files to ../../blobs/; those links may reach the repository's folder.
        string linkRoot = Path.GetFileName(Path.GetDirectoryName(root)) == "snapshots" ? Path.GetDirectoryName(Path.GetDirectoryName(root))! : root;
        string current = root;
        foreach (string part in Path.GetRelativePath(root, full).Split(Path.DirectorySeparatorChar))
        {
            current = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(current) ? new DirectoryInfo(current) : new FileInfo(current);
            if (info.LinkTarget is null) continue;
            string? target;
            try
            {
                target = info.ResolveLinkTarget(returnFinalTarget: true)?.FullName;
            }
            catch (IOException e)
            {
                throw new SharpTuneException($"{source}: {key} names '{relative}', whose link {current} cannot be resolved: {e.Message}", e);
            }
            if (target is null || !IsInside(Path.GetFullPath(target), linkRoot))
                Refuse($"is a symbolic link to {target ?? info.LinkTarget} outside the directory");
        }
        return full;
    }

    private static bool IsInside(string path, string root) =>
        path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal);
}
