using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Lora;
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Tests.Data;
using SharpTune.Tests.Fixtures;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>
/// Further checks per architecture beyond <see cref="ArchitectureParityTests"/> (outputs, logits and gradients
/// against transformers): the bare encoder, bf16, save and reload, LoRA targets. One subclass per architecture.
/// </summary>
public abstract class HfParityTests(string architecture)
{
    /// <summary>Hidden states and logits: an independent float32 implementation agrees to ~1e-5.</summary>
    protected const double OutputTolerance = 1e-4;

    [Fact]
    public void Bare_encoder_loads_from_the_task_checkpoint_and_leaves_only_the_head_unused()
    {
        var directory = HfModelDirectory.Open(HfFixtures.Directory(architecture));
        var tensors = directory.LoadWeights();
        Encoder encoder;
        IReadOnlyList<string> unused;
        try
        {
            (encoder, unused) = PretrainedEncoder.LoadEncoder(directory.Config, tensors, directory.WeightsPath);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        using var _ = encoder;
        encoder.eval();
        Assert.All(unused, k => Assert.False(k.StartsWith(encoder.Architecture.KeyPrefix, StringComparison.Ordinal), k));
        Assert.NotEmpty(unused);

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var @case = HfFixtures.Case(architecture, "plain_english");
        var encoded = encoder.call(HfParity.Ints(@case, "input_ids")!, HfParity.Ints(@case, "token_type_ids"), HfParity.Ints(@case, "attention_mask"));
        Assert.Equal(encoder.HasPooler, encoded.PooledOutput is not null);
        double diff = HfParity.MaxAbsDiff(encoded.LastHiddenState.squeeze(0), @case["last_hidden_state"]);
        Assert.True(diff < OutputTolerance, $"max |hidden - HF| = {diff}");
    }

    [Fact]
    public void Bf16_forward_and_backward_run_and_keep_float32_outputs_and_gradients()
    {
        using var model = HfParity.LoadClassifier(architecture);
        model.train();
        using var scope = torch.NewDisposeScope();
        var @case = HfFixtures.Case(architecture, "train_step_sequence");
        Tensor ids = HfParity.Ints(@case, "input_ids")!, mask = HfParity.Ints(@case, "attention_mask")!;
        Tensor? types = HfParity.Ints(@case, "token_type_ids");
        Tensor logits;
        using (Autocast.Enter(Precision.Bf16))
        {
            logits = model.call(ids, types, mask);
            SharpTune.Training.Losses.Compute(ProblemType.SingleLabelClassification, logits, torch.tensor(HfFixtures.Longs(@case["labels"]))).backward();
        }
        Assert.Equal(ScalarType.Float32, logits.dtype);
        Assert.True(logits.isfinite().all().item<bool>(), "bf16 logits are not finite");
        Assert.All(model.parameters(), p =>
        {
            Assert.Equal(ScalarType.Float32, p.dtype);
            if (p.grad is { } grad) Assert.True(grad.isfinite().all().item<bool>());
        });
    }

    [Fact]
    public void Saved_checkpoint_loads_back_with_the_same_logits_and_HF_class()
    {
        using var files = new TempFiles();
        string directory = files.PathOf("run");
        var (model, labels, settings) = ClassifierCheckpoint.Load(HfFixtures.Directory(architecture));
        using var _ = model;
        ClassifierCheckpoint.Save(directory, model, SharpTune.Tokenization.BertTokenizer.FromDirectory(HfFixtures.Directory(architecture)), labels, settings);
        var (reloaded, _, _) = ClassifierCheckpoint.Load(directory);
        using var __ = reloaded;

        var saved = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "config.json")))!;
        Assert.Equal(model.Encoder.Architecture.SequenceClassificationClass, saved["architectures"]![0]!.GetValue<string>());
        Assert.Equal(architecture, saved["model_type"]!.GetValue<string>());
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var @case = HfFixtures.Case(architecture, "padded_batch");
        var (_, before) = HfParity.Run(model, @case);
        var (_, after) = HfParity.Run(reloaded, @case);
        Assert.True(before.eq(after).all().item<bool>(), "logits changed across save and load");
    }

    [Fact]
    public void Default_lora_targets_wrap_two_layers_per_block_and_groups_cover_every_key()
    {
        using var model = HfParity.LoadClassifier(architecture);
        int layers = model.Encoder.Config.NumHiddenLayers;
        var entries = ParameterGroups.Of(model);
        Assert.All(entries, e => Assert.Contains(e.Group, ParameterGroups.Order(layers)));
        Assert.All(entries.Where(e => !e.Key.StartsWith(model.EncoderPrefix, StringComparison.Ordinal)), e => Assert.Equal(ParameterGroups.Head, e.Group));
        Assert.Equal(layers, entries.Where(e => e.Layer is not null).Select(e => e.Layer).Distinct().Count());

        var wrapped = LoraInjector.Inject(model.Encoder, new LoraOptions(Rank: 2, Alpha: 4, Dropout: 0));
        Assert.Equal(2 * layers, wrapped.Count);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var (_, logits) = HfParity.Run(model, HfFixtures.Case(architecture, "plain_english"));
        double diff = HfParity.MaxAbsDiff(logits.squeeze(0), HfFixtures.Case(architecture, "plain_english")["sequence_logits"]);
        Assert.True(diff < OutputTolerance, $"fresh adapters (B = 0) must not change the logits: {diff}");
    }
}
