using SharpTune.Checkpoints;
using SharpTune.Heads;
using SharpTune.Tests.Fixtures;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>
/// The Python-saved XForTokenClassification checkpoint of every architecture loads with its per-token head and
/// labels, and its token logits, loss (ignore index -100) and gradients match transformers.
/// </summary>
public sealed class TokenClassificationParityTests(Xunit.Abstractions.ITestOutputHelper output)
{
    public static TheoryData<string> Architectures() => new(HfFixtures.Architectures);

    private static (Tensor Ids, Tensor? Types, Tensor Mask) Inputs(System.Text.Json.Nodes.JsonObject c) =>
        (HfParity.Ints(c, "input_ids")!, HfParity.Ints(c, "token_type_ids"), HfParity.Ints(c, "attention_mask")!);

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Token_logits_match_transformers_on_every_case(string architecture)
    {
        var (model, labels, _) = ClassifierCheckpoint.Load(HfFixtures.TokenDirectory(architecture));
        using var _ = model;
        Assert.IsType<TokenClassificationHead>(model.Head);
        Assert.Equal(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], labels.Names);
        Assert.Equal(model.Encoder.Architecture.TokenClassificationClass, ClassifierCheckpoint.HuggingFaceClass(model));
        using var noGrad = no_grad();
        double worst = 0;
        foreach (var c in HfFixtures.Cases(architecture).Where(c => c["kind"]!.GetValue<string>() is "single" or "pair" or "words"))
        {
            using var scope = NewDisposeScope();
            var (ids, types, mask) = Inputs(c);
            double diff = HfParity.MaxAbsDiff(model.call(ids, types, mask).squeeze(0), c["token_logits"]);
            Assert.True(diff < 1e-4, $"{architecture}/{c["name"]}: token logits differ by {diff}");
            worst = Math.Max(worst, diff);
        }
        var batch = HfFixtures.Case(architecture, "padded_batch");
        var (batchIds, batchTypes, batchMask) = Inputs(batch);
        double padded = HfParity.MaxAbsDiffAtRealTokens(model.call(batchIds, batchTypes, batchMask), batch["token_logits"], batchMask);
        Assert.True(padded < 1e-4, $"{architecture}: padded batch token logits differ by {padded}");
        output.WriteLine($"{architecture}: max |diff| token logits {worst:E2}, padded batch {padded:E2}");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Token_training_step_loss_and_every_gradient_match_transformers(string architecture)
    {
        var (model, _, _) = ClassifierCheckpoint.Load(HfFixtures.TokenDirectory(architecture));
        using var _ = model;
        var c = HfFixtures.Case(architecture, "train_step_token");
        var (ids, types, mask) = Inputs(c);
        model.eval(); // transformers ran train() with every dropout at 0
        var logits = model.call(ids, types, mask);
        var labels = HfParity.Ints(c, "labels")!;
        var loss = TaskType.Token.Loss(logits, labels); // the task's own loss: ignore index -100, mean over the tokens that count
        Assert.True(Math.Abs(loss.item<float>() - c["loss"]!.GetValue<float>()) < 1e-5, $"{architecture}: loss {loss.item<float>()} vs {c["loss"]}");
        loss.backward();

        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var expected = c["grad_norms"]!.AsObject();
        Assert.Equal(expected.Select(e => e.Key).Order(), parameters.Keys.Order());
        double worst = 0;
        foreach (var (key, node) in expected)
        {
            var grad = parameters[key].grad;
            if (node is null) { Assert.True(grad is null || grad.abs().max().item<float>() == 0, $"{key} should have no gradient"); continue; }
            float want = node.GetValue<float>(), got = grad!.norm().item<float>();
            bool noise = want < 1e-6; // attention key biases: zero in exact arithmetic
            Assert.True(noise ? got < 1e-5 : Math.Abs(got - want) <= 1e-4 * want + 1e-7, $"{architecture}: grad norm of {key}: {got} vs {want}");
            if (!noise) worst = Math.Max(worst, Math.Abs(got - want) / want);
        }
        foreach (var (key, node) in c["head_grads"]!.AsObject())
            Assert.True(HfParity.MaxAbsDiff(parameters[key].grad!, node) < 1e-4, $"{architecture}: gradient of {key} differs");
        output.WriteLine($"{architecture}: token loss |diff| {Math.Abs(loss.item<float>() - c["loss"]!.GetValue<float>()):E2}, max relative grad-norm diff {worst:E2}");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Saved_token_checkpoint_keeps_the_python_class_and_keys(string architecture)
    {
        using var files = new SharpTune.Tests.Data.TempFiles();
        string directory = files.PathOf("run");
        var (model, labels, settings) = ClassifierCheckpoint.Load(HfFixtures.TokenDirectory(architecture));
        using var _ = model;
        ClassifierCheckpoint.Save(directory, model, SharpTune.Tokenization.Tokenizer.FromDirectory(HfFixtures.TokenDirectory(architecture)), labels, settings);
        var saved = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "config.json")))!;
        Assert.Equal(model.Encoder.Architecture.TokenClassificationClass, saved["architectures"]![0]!.GetValue<string>());
        var python = SafeTensors.Load(Path.Combine(HfFixtures.TokenDirectory(architecture), "model.safetensors"));
        var ours = SafeTensors.Load(Path.Combine(directory, "model.safetensors"));
        try
        {
            Assert.Equal(python.Keys.Where(k => !k.EndsWith("position_ids", StringComparison.Ordinal)).Order(), ours.Keys.Order());
        }
        finally
        {
            foreach (var t in python.Values.Concat(ours.Values)) t.Dispose();
        }
    }

    [Fact]
    public void Predict_refuses_a_token_checkpoint_with_a_clear_message()
    {
        var e = Assert.Throws<SharpTuneException>(() => SharpTune.TextClassifier.Load(HfFixtures.TokenDirectory("bert")));
        Assert.Contains("BertForTokenClassification", e.Message);
        Assert.Contains("TokenTagger.Load", e.Message);
    }
}
