using Microsoft.ML.OnnxRuntime;
using SharpTune.Checkpoints;
using SharpTune.Models;

namespace SharpTune.Tests.Parity;

/// <summary>The test classes that share one <see cref="PackagedMiniLMFixture"/> (one import, one ORT session).</summary>
[CollectionDefinition(Name)]
public sealed class PackagedMiniLMCollection : ICollectionFixture<PackagedMiniLMFixture>
{
    public const string Name = "packaged MiniLM";
}

/// <summary>
/// Once per test collection: the packaged model.onnx in an ONNX Runtime session, and the same model imported into a
/// private cache and loaded by SharpTune.
/// </summary>
public sealed class PackagedMiniLMFixture : IDisposable
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "sharptune-parity-" + Guid.NewGuid().ToString("N"));
    public string ModelDir { get; }
    public PretrainedEncoder Encoder { get; }
    public InferenceSession Session { get; }

    public PackagedMiniLMFixture()
    {
        Directory.CreateDirectory(Root);
        string onnx = Path.Combine(Root, "model.onnx");
        PackagedResources.ExtractToFile(PackagedResources.MiniLMAssemblyPath, PackagedResources.MiniLMOnnx, onnx);
        Session = new InferenceSession(onnx, new SessionOptions { IntraOpNumThreads = 2 });
        ModelDir = PackagedModels.MiniLM(Path.Combine(Root, "cache"));
        Encoder = PretrainedEncoder.Load(ModelDir);
    }

    public void Dispose()
    {
        Encoder.Dispose();
        Session.Dispose();
        Directory.Delete(Root, recursive: true);
    }
}
