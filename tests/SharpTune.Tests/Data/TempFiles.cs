namespace SharpTune.Tests.Data;

/// <summary>Writes test data files into a fresh temporary folder, deleted on dispose.</summary>
internal sealed class TempFiles : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sharptune-data-").FullName;

    public string Write(string name, string content, bool bom = false)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllText(path, content, new System.Text.UTF8Encoding(bom));
        return path;
    }

    public string WriteBytes(string name, byte[] bytes)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public string PathOf(string name) => Path.Combine(_folder, name);

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
