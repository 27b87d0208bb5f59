using System.Text.Json.Nodes;

namespace SharpTune.Tests.Cli;

public class PrecisionOptionTests(TrainCliHarness cli) : IClassFixture<TrainCliHarness>
{
    [Fact]
    public void Train_and_evaluate_in_bf16_keep_fp32_weights_and_pass_the_audit()
    {
        string run = cli.PathOf("bf16-run");
        var (exit, output) = TrainCliHarness.Run("train", "--model", cli.ModelDirectory, "--train", cli.TrainFile, "--eval", cli.EvalFile,
            "--strategy", "full", "--epochs", "1", "--batch-size", "8", "--precision", "bf16", "--out", run);
        Assert.True(exit == 0, output);
        Assert.Contains("PASSED", File.ReadAllText(Path.Combine(run, "audit.md")));
        var header = SharpTune.Checkpoints.SafeTensors.ReadHeader(Path.Combine(run, "model.safetensors"));
        Assert.All(header.Tensors, t => Assert.Equal("F32", t.DType));
        var (evalExit, json) = TrainCliHarness.Run("evaluate", "--model", run, "--data", cli.EvalFile, "--format", "json", "--precision", "bf16");
        Assert.True(evalExit == 0, json);
        Assert.InRange(JsonNode.Parse(json[json.IndexOf('{')..])!["accuracy"]!.GetValue<double>(), 0, 1);
    }

    [Fact]
    public void An_unknown_precision_is_named_in_the_error()
    {
        var (exit, output) = TrainCliHarness.Run("evaluate", "--model", cli.TrainedRun, "--data", cli.EvalFile, "--precision", "fp16");
        Assert.Equal(1, exit);
        Assert.Contains("--precision", output);
        Assert.Contains("fp16", output);
    }
}
