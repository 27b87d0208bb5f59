using SharpTune.Training;
using System.Text.Json.Nodes;
using SharpTune.Checkpoints;
using SharpTune.Models;
using SharpTune.Tests.Fixtures;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>
/// Every architecture against what Hugging Face transformers 4.45.2 computed on the same tiny checkpoint
/// (tests/SharpTune.Tests/Fixtures/hf): the Python-saved XForSequenceClassification directory loads with its head,
/// and hidden states, logits, the loss of a training step and every parameter's gradient agree.
/// </summary>
public sealed class ArchitectureParityTests(Xunit.Abstractions.ITestOutputHelper output)
{
    public static TheoryData<string> Architectures() => new(HfFixtures.Architectures.Where(Supported));

    private static bool Supported(string architecture) =>
        SharpTune.Models.Architectures.All.Any(a => a.ModelType == architecture);

    private static (Tensor Ids, Tensor? Types, Tensor Mask) Inputs(JsonObject c) =>
        (HfParity.Ints(c, "input_ids")!, HfParity.Ints(c, "token_type_ids"), HfParity.Ints(c, "attention_mask")!);

    private static float MaxDiff(Tensor actual, float[] expected) =>
        (actual.detach().flatten() - tensor(expected)).abs().max().item<float>();

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Python_saved_task_checkpoint_loads_with_its_head_and_labels(string architecture)
    {
        var (model, labels, settings) = ClassifierCheckpoint.Load(HfFixtures.Directory(architecture));
        using var _ = model;
        Assert.Equal(["neg", "neu", "pos"], labels.Names);
        Assert.Equal(3, settings.Outputs);
        Assert.Equal(architecture, model.Encoder.Config.ModelType);
        Assert.True(ClassifierCheckpoint.IsHuggingFaceHead(model));
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Hidden_states_and_logits_match_transformers_on_every_case(string architecture)
    {
        var (model, _, _) = ClassifierCheckpoint.Load(HfFixtures.Directory(architecture));
        using var _ = model;
        using var noGrad = no_grad();
        float worstHidden = 0, worstLogits = 0;
        foreach (var c in HfFixtures.Cases(architecture).Where(c => c["kind"]!.GetValue<string>() is "single" or "pair" or "words"))
        {
            using var scope = NewDisposeScope();
            var (ids, types, mask) = Inputs(c);
            var encoded = model.Encoder.call(ids, types, mask);
            float hidden = MaxDiff(encoded.LastHiddenState, HfFixtures.Floats(c["last_hidden_state"]));
            float logits = MaxDiff(model.call(ids, types, mask), HfFixtures.Floats(c["sequence_logits"]));
            Assert.True(hidden < 1e-4, $"{architecture}/{c["name"]}: last_hidden_state differs by {hidden}");
            Assert.True(logits < 1e-4, $"{architecture}/{c["name"]}: logits differ by {logits}");
            if (c["pooler_output"] is JsonArray pooled && encoded.PooledOutput is { } ours)
                Assert.True(MaxDiff(ours, HfFixtures.Floats(pooled)) < 1e-4, $"{architecture}/{c["name"]}: pooler_output differs");
            (worstHidden, worstLogits) = (Math.Max(worstHidden, hidden), Math.Max(worstLogits, logits));
        }
        output.WriteLine($"{architecture}: max |diff| last_hidden_state {worstHidden:E2}, logits {worstLogits:E2}");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Padded_batch_matches_transformers_on_real_tokens(string architecture)
    {
        var (model, _, _) = ClassifierCheckpoint.Load(HfFixtures.Directory(architecture));
        using var _ = model;
        using var noGrad = no_grad();
        var c = HfFixtures.Case(architecture, "padded_batch");
        var (ids, types, mask) = Inputs(c);
        var hidden = model.Encoder.call(ids, types, mask).LastHiddenState;
        var expected = tensor(HfFixtures.Floats(c["last_hidden_state"])).reshape(hidden.shape);
        var real = mask.to_type(ScalarType.Bool).unsqueeze(-1);
        float diff = (hidden - expected).abs().masked_fill(real.logical_not(), 0).max().item<float>();
        Assert.True(diff < 1e-4, $"{architecture}: padded batch differs on real tokens by {diff}");
        Assert.True(MaxDiff(model.call(ids, types, mask), HfFixtures.Floats(c["sequence_logits"])) < 1e-4, $"{architecture}: padded batch logits differ");
        Assert.Equal(3, ids.shape[0]);
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Training_step_loss_and_every_gradient_match_transformers(string architecture)
    {
        var (model, _, _) = ClassifierCheckpoint.Load(HfFixtures.Directory(architecture));
        using var _ = model;
        var c = HfFixtures.Case(architecture, "train_step_sequence");
        var (ids, types, mask) = Inputs(c);
        // transformers ran train() with every dropout at 0: numerically eval mode with gradients on.
        model.eval();
        var logits = model.call(ids, types, mask);
        var loss = nn.functional.cross_entropy(logits, tensor(HfFixtures.Longs(c["labels"])));
        Assert.True(Math.Abs(loss.item<float>() - c["loss"]!.GetValue<float>()) < 1e-5, $"{architecture}: loss {loss.item<float>()} vs {c["loss"]}");
        loss.backward();

        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var expected = c["grad_norms"]!.AsObject();
        double worstRelative = 0;
        Assert.Equal(expected.Select(e => e.Key).Order(), parameters.Keys.Order()); // the task model's keys are transformers' keys
        foreach (var (key, node) in expected)
        {
            var grad = parameters[key].grad;
            if (node is null) { Assert.True(grad is null || grad.abs().max().item<float>() == 0, $"{key} should have no gradient"); continue; }
            float want = node.GetValue<float>(), got = grad!.norm().item<float>();
            // Attention key biases have a zero gradient in exact arithmetic (softmax shift); the recorded norm is rounding noise.
            bool noise = want < 1e-6;
            Assert.True(noise ? got < 1e-5 : Math.Abs(got - want) <= 1e-4 * want + 1e-7, $"{architecture}: grad norm of {key}: {got} vs {want}");
            if (!noise) worstRelative = Math.Max(worstRelative, Math.Abs(got - want) / want);
        }
        output.WriteLine($"{architecture}: loss {loss.item<float>()} vs {c["loss"]} (|diff| {Math.Abs(loss.item<float>() - c["loss"]!.GetValue<float>()):E2}); " +
            $"{expected.Count} gradient norms, max relative diff {worstRelative:E2}");
        foreach (var (key, node) in c["head_grads"]!.AsObject())
            Assert.True(MaxDiff(parameters[key].grad!, HfFixtures.Floats(node)) < 1e-4, $"{architecture}: gradient of {key} differs");
    }
    [Theory]
    [MemberData(nameof(Architectures))]
    public void Bare_encoder_loads_from_the_task_checkpoint_and_leaves_only_the_head_unused(string architecture)
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
        Assert.NotEmpty(unused);
        Assert.All(unused, k => Assert.False(k.StartsWith(encoder.Architecture.KeyPrefix, StringComparison.Ordinal), k));

        using var noGrad = no_grad();
        var c = HfFixtures.Case(architecture, "plain_english");
        var (ids, types, mask) = Inputs(c);
        var encoded = encoder.call(ids, types, mask);
        Assert.True(MaxDiff(encoded.LastHiddenState, HfFixtures.Floats(c["last_hidden_state"])) < 1e-4, $"{architecture}: bare encoder differs");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Bf16_forward_and_backward_run_and_keep_float32_outputs_and_gradients(string architecture)
    {
        var (model, _, _) = ClassifierCheckpoint.Load(HfFixtures.Directory(architecture));
        using var _ = model;
        model.train();
        var c = HfFixtures.Case(architecture, "train_step_sequence");
        var (ids, types, mask) = Inputs(c);
        Tensor logits;
        using (SharpTune.Models.Autocast.Enter(Precision.Bf16))
        {
            logits = model.call(ids, types, mask);
            TaskType.SingleLabel.Loss(logits, tensor(HfFixtures.Longs(c["labels"]))).backward();
        }
        Assert.Equal(ScalarType.Float32, logits.dtype);
        Assert.True(logits.isfinite().all().item<bool>(), $"{architecture}: bf16 logits are not finite");
        Assert.All(model.parameters(), p =>
        {
            Assert.Equal(ScalarType.Float32, p.dtype);
            if (p.grad is { } grad) Assert.True(grad.isfinite().all().item<bool>());
        });
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Saved_run_has_the_python_layout_and_loads_back_with_the_same_logits(string architecture)
    {
        using var files = new SharpTune.Tests.Data.TempFiles();
        string directory = files.PathOf("run");
        var (model, labels, settings) = ClassifierCheckpoint.Load(HfFixtures.Directory(architecture));
        using var _ = model;
        ClassifierCheckpoint.Save(directory, model, SharpTune.Tokenization.Tokenizer.FromDirectory(HfFixtures.Directory(architecture)), labels, settings);
        var (reloaded, reloadedLabels, _) = ClassifierCheckpoint.Load(directory);
        using var __ = reloaded;

        // What transformers' from_pretrained reads: the class, the model type, the labels and exactly its keys and shapes.
        var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "config.json")))!;
        Assert.Equal(model.Encoder.Architecture.SequenceClassificationClass, saved["architectures"]![0]!.GetValue<string>());
        Assert.Equal(architecture, saved["model_type"]!.GetValue<string>());
        Assert.Equal(labels.Names, reloadedLabels.Names);
        var python = SafeTensors.Load(Path.Combine(HfFixtures.Directory(architecture), "model.safetensors"));
        var ours = SafeTensors.Load(Path.Combine(directory, "model.safetensors"));
        try
        {
            Assert.Equal(python.Keys.Where(k => !k.EndsWith("position_ids", StringComparison.Ordinal)).Order(), ours.Keys.Order());
            Assert.All(ours, t => Assert.Equal(python[t.Key].shape, t.Value.shape));
        }
        finally
        {
            foreach (var t in python.Values.Concat(ours.Values)) t.Dispose();
        }

        using var noGrad = no_grad();
        var (ids, types, mask) = Inputs(HfFixtures.Case(architecture, "padded_batch"));
        Assert.True(model.call(ids, types, mask).eq(reloaded.call(ids, types, mask)).all().item<bool>(), $"{architecture}: logits changed across save and load");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Default_lora_targets_wrap_two_layers_per_block_and_groups_cover_every_key(string architecture)
    {
        var (model, _, _) = ClassifierCheckpoint.Load(HfFixtures.Directory(architecture));
        using var _ = model;
        int layers = model.Encoder.Config.NumHiddenLayers;
        var entries = SharpTune.Strategies.ParameterGroups.Of(model);
        Assert.All(entries, e => Assert.Contains(e.Group, SharpTune.Strategies.ParameterGroups.Order(layers)));
        Assert.All(entries.Where(e => !e.Key.StartsWith(model.EncoderPrefix, StringComparison.Ordinal)), e => Assert.Equal(SharpTune.Strategies.ParameterGroups.Head, e.Group));
        Assert.Equal(layers, entries.Where(e => e.Layer is not null).Select(e => e.Layer).Distinct().Count());

        var wrapped = SharpTune.Lora.LoraInjector.Inject(model.Encoder, new SharpTune.Lora.LoraOptions(Rank: 2, Alpha: 4, Dropout: 0));
        Assert.Equal(2 * layers, wrapped.Count);
        using var noGrad = no_grad();
        var c = HfFixtures.Case(architecture, "plain_english");
        var (ids, types, mask) = Inputs(c);
        Assert.True(MaxDiff(model.call(ids, types, mask), HfFixtures.Floats(c["sequence_logits"])) < 1e-4, $"{architecture}: fresh adapters (B = 0) must not change the logits");
    }
}
