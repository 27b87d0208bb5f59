using System.Text.Json.Nodes;
using SharpTune.Tests.Fixtures;

namespace SharpTune.Tests.Cli;

/// <summary>
/// A task checkpoint saved by Python's transformers, of every architecture, is a --model for predict and evaluate
/// (its head and id2label) and for embed (its encoder, saying the head is not used).
/// </summary>
public sealed class PythonCheckpointCliTests
{
    public static TheoryData<string> Architectures() => new(HfFixtures.Architectures);

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Predict_gives_the_softmax_of_the_logits_transformers_computed(string architecture)
    {
        var c = HfFixtures.Case(architecture, "plain_english");
        var (exit, output) = TrainCliHarness.Run("predict", "--model", HfFixtures.Directory(architecture), "--text", c["text"]!.GetValue<string>(), "--format", "json");
        Assert.True(exit == 0, output);
        var json = JsonNode.Parse(output[output.IndexOf('{')..])!.AsObject();
        float[] logits = HfFixtures.Floats(c["sequence_logits"]);
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
        string[] labels = ["neg", "neu", "pos"];
        for (int i = 0; i < 3; i++)
            Assert.Equal(Math.Exp(logits[i] - max) / sum, json["probabilities"]![labels[i]]!.GetValue<double>(), 4);
        Assert.Equal(labels[Array.IndexOf(logits, logits.Max())], json["label"]!.GetValue<string>());
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Evaluate_reads_labels_from_id2label(string architecture)
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-pycli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string data = Path.Combine(dir, "eval.csv");
            File.WriteAllText(data, "text,label\nA good day,pos\nA bad day,neg\nA day,neu\n");
            var (exit, output) = TrainCliHarness.Run("evaluate", "--model", HfFixtures.Directory(architecture), "--data", data);
            Assert.True(exit == 0, output);
            Assert.Contains("accuracy", output, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Embed_uses_the_encoder_of_a_task_checkpoint_and_says_the_head_is_not_used(string architecture)
    {
        var (exit, output) = TrainCliHarness.Run("embed", "--model", HfFixtures.Directory(architecture), "--text", "Hello world", "--format", "json");
        Assert.True(exit == 0, output);
        Assert.Contains("is not used", output);
        Assert.Contains("classifier.", output);
    }
}
