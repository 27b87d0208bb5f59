using System.Globalization;
using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Strategies;

namespace SharpTune.Tests.Cli;

public class InspectStrategyTests(TrainCliHarness cli) : IClassFixture<TrainCliHarness>
{
    [Theory]
    [InlineData("top:1", "pooled")]
    [InlineData("bitfit", "cls")]
    [InlineData("lora:r=2", "mean")]
    public void Inspect_with_a_strategy_prints_its_parameter_table_without_training(string strategy, string head)
    {
        var (exit, output) = TrainCliHarness.Run("inspect", "--model", cli.ModelDirectory, "--strategy", strategy, "--head", head);
        Assert.True(exit == 0, output);
        using var encoder = PretrainedEncoder.Load(cli.ModelDirectory);
        var model = new SequenceClassifier(encoder.Model, HeadRegistry.Create(head, 32, 2));
        var plan = StrategyApplier.Apply(model, Strategy.Parse(strategy));
        Assert.Contains(plan.TrainableParameters.ToString("N0", CultureInfo.InvariantCulture), output);
        Assert.Contains(plan.TrainablePercent.ToString("F2", CultureInfo.InvariantCulture) + "% trainable", output);
        Assert.Contains("layer 1", output);
    }

    [Fact]
    public void Inspect_with_an_unknown_strategy_names_it()
    {
        var (exit, output) = TrainCliHarness.Run("inspect", "--model", cli.ModelDirectory, "--strategy", "half");
        Assert.Equal(1, exit);
        Assert.Contains("half", output);
    }
}
