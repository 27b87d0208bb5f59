using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

public sealed class FeatureCacheDiskTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"sharptune-features-{Guid.NewGuid():N}");
    private readonly string modelDir;
    private readonly string cacheDir;
    private readonly List<TextExample> texts = TinyModels.ToyTexts(40, seed: 12);

    public FeatureCacheDiskTests()
    {
        modelDir = TinyModels.Directory(Path.Combine(root, "model"));
        cacheDir = Path.Combine(root, "features");
    }

    public void Dispose() => Directory.Delete(root, recursive: true);

    private sealed class Recorder : IProgress<TrainingEvent>
    {
        public List<TrainingEvent> Events { get; } = [];
        public void Report(TrainingEvent value) => Events.Add(value);
    }

    /// <summary>Trains a fresh frozen classifier (same seed every time); returns the features' source and the head's weights.</summary>
    private (string Source, Dictionary<string, float[]> Head) Train(IReadOnlyList<TextExample>? examples = null, int maxLength = 16,
        string head = "mean", Action<TextClassifier>? beforeTraining = null, Func<int, int, Head>? customHead = null)
    {
        var labels = LabelSet.FromNames(["no", "yes"]);
        using var classifier = customHead is null
            ? TextClassifier.Create(modelDir, head, labels, maxLength: maxLength, seed: 5)
            : TextClassifier.Create(modelDir, customHead, labels, maxLength: maxLength, seed: 5);
        beforeTraining?.Invoke(classifier);
        var recorder = new Recorder();
        var options = new TrainingOptions { Epochs = 2, BatchSize = 8, LearningRates = new(1e-3), FeatureCacheDirectory = cacheDir };
        var result = classifier.Train(examples ?? texts, null, new FrozenStrategy(), options, recorder);
        Assert.True(result.UsedFeatureCache);
        string source = Assert.Single(recorder.Events.OfType<FeaturesCachedEvent>()).Source;
        var weights = classifier.Model.Head.named_parameters()
            .ToDictionary(p => p.name, p => p.parameter.data<float>().ToArray());
        return (source, weights);
    }

    [Fact]
    public void A_full_disk_for_the_cache_does_not_fail_training()
    {
        var first = Train();
        string file = Assert.Single(Directory.GetFiles(cacheDir, "*.safetensors"));
        File.Delete(file);
        // The writer's temporary file leads to /dev/full: every write fails with "no space left on device", as on a full disk.
        File.CreateSymbolicLink(AtomicFile.TemporaryPath(file), "/dev/full");
        var second = Train();
        Assert.Equal("computed", second.Source);
        foreach (var (name, weight) in first.Head) Assert.Equal(weight, second.Head[name]);
        Assert.Empty(Directory.GetFiles(cacheDir, "*.safetensors"));
    }

    [Fact]
    public void A_second_run_on_the_same_inputs_reads_the_features_from_disk_and_trains_the_same_head()
    {
        var computed = Train();
        var stored = Train();
        Assert.Equal("computed", computed.Source);
        Assert.Equal("disk", stored.Source);
        Assert.Single(Directory.GetFiles(cacheDir, "*.safetensors"));
        Assert.Equal(computed.Head.Keys, stored.Head.Keys);
        foreach (var (name, weight) in computed.Head) Assert.Equal(weight, stored.Head[name]);
    }

    [Fact]
    public void Changing_the_max_length_a_text_the_head_input_or_the_weights_computes_the_features_again()
    {
        Assert.Equal("computed", Train().Source);
        Assert.Equal("disk", Train().Source);
        Assert.Equal("computed", Train(maxLength: 8).Source);
        var oneChanged = texts.ToList();
        oneChanged[7] = oneChanged[7] with { Text = oneChanged[7].Text + " w50" };
        Assert.Equal("computed", Train(oneChanged).Source);
        Assert.Equal("computed", Train(head: "cls").Source);
        Assert.Equal("computed", Train(beforeTraining: c =>
        {
            using var noGrad = no_grad();
            c.Model.Encoder.named_parameters().First(p => p.name.EndsWith("word_embeddings.weight", StringComparison.Ordinal)).parameter[10, 0].add_(0.5f);
        }).Source);
        Assert.Equal(5, Directory.GetFiles(cacheDir, "*.safetensors").Length);
        Assert.Equal("disk", Train(maxLength: 8).Source);
    }

    [Fact]
    public void A_corrupt_cache_file_is_ignored_computed_again_and_overwritten()
    {
        var reference = Train();
        string file = Assert.Single(Directory.GetFiles(cacheDir, "*.safetensors"));
        byte[] good = File.ReadAllBytes(file);
        string wrongShape = Path.Combine(root, "wrong-shape.safetensors");
        using (var small = zeros(3, 3))
            SharpTune.Checkpoints.SafeTensors.Save(wrongShape, new Dictionary<string, Tensor> { ["features"] = small }, new Dictionary<string, string> { ["format"] = "sharptune-features 1" });
        foreach (byte[] bad in new[] { "not a safetensors file"u8.ToArray(), good[..(good.Length / 2)], File.ReadAllBytes(wrongShape) })
        {
            File.WriteAllBytes(file, bad);
            var again = Train();
            Assert.Equal("computed", again.Source);
            foreach (var (name, weight) in reference.Head) Assert.Equal(weight, again.Head[name]);
            Assert.Equal(good, File.ReadAllBytes(file));
        }
        File.WriteAllBytes(file, good);
        Assert.Equal("disk", Train().Source);
    }

    [Fact]
    public void Sequence_features_of_varied_length_come_back_from_disk_unchanged()
    {
        var computed = Train(customHead: (hidden, outputs) => new MaskedMeanHead(hidden, outputs));
        var stored = Train(customHead: (hidden, outputs) => new MaskedMeanHead(hidden, outputs));
        Assert.Equal(("computed", "disk"), (computed.Source, stored.Source));
        foreach (var (name, weight) in computed.Head) Assert.Equal(weight, stored.Head[name]);
    }

    [Fact]
    public void Training_without_the_disk_cache_writes_nothing()
    {
        using var model = TinyModels.Classifier("mean", dropout: 0);
        var options = new TrainingOptions { Epochs = 1, BatchSize = 8, FeatureCacheDirectory = cacheDir, DiskFeatureCache = false };
        Assert.True(new Trainer(model, new FrozenStrategy(), options).Fit(TinyModels.ToyTask(16, seed: 2)).UsedFeatureCache);
        Assert.False(Directory.Exists(cacheDir));
    }

    /// <summary>A sequence head: masked mean of the token states, then a linear layer.</summary>
    private sealed class MaskedMeanHead : Head
    {
        private readonly TorchSharp.Modules.Linear out_proj;

        public MaskedMeanHead(int hidden, int outputs) : base(nameof(MaskedMeanHead))
        {
            out_proj = nn.Linear(hidden, outputs);
            RegisterComponents();
        }

        public override HeadInput Input => HeadInput.Sequence;
        public override int Outputs => (int)out_proj.weight!.shape[0];

        public override Tensor forward(Tensor features, Tensor? attentionMask)
        {
            Tensor mask = attentionMask!.unsqueeze(-1).to_type(features.dtype);
            return out_proj.call((features * mask).sum(1) / mask.sum(1));
        }
    }
}
