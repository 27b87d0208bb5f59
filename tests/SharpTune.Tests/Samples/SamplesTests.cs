using SharpTune.Strategies;
using Binary = global::Samples.BertBinaryClassifier;
using Sequence = global::Samples.SequenceClassification;

namespace SharpTune.Tests.Samples;

/// <summary>Each sample's --quick run on the real packaged MiniLM: what CI runs and the README quotes.</summary>
public class SamplesTests
{
    [Fact]
    public void SequenceClassification_sample_runs_its_RoBERTa_head_on_a_RoBERTa()
    {
        var output = new StringWriter();
        string roberta = SharpTune.Tests.Fixtures.HfFixtures.Directory("roberta"); // tiny random RoBERTa saved by transformers
        var result = Sequence.Program.Run(Sequence.SampleOptions.Parse(["--quick", "--model", roberta]), output);

        Assert.True(result.Frozen.Audit.Passed, result.Frozen.Audit.Summary);
        Assert.Equal(0, result.Frozen.Audit.BackboneChanged);
        Assert.True(result.Full.Audit.Passed, result.Full.Audit.Summary);
        Assert.All(result.Full.Audit.Entries, e => Assert.StartsWith(e.Group == ParameterGroups.Head ? "sharptune_head." : "roberta.", e.Key)); // a custom head: not HF's type
        // dense (hidden × hidden + hidden) + out_proj (hidden × 2 + 2), hidden = 32.
        Assert.Equal(32 * 32 + 32 + 32 * 2 + 2, HeadParameters(result.Frozen.Plan));
    }

    [Fact]
    public void SequenceClassification_sample_trains_only_the_head_when_frozen_and_everything_but_the_pooler_when_full()
    {
        var output = new StringWriter();
        var result = Sequence.Program.Run(Sequence.SampleOptions.Parse(["--quick"]), output);

        AssertFrozenRun(result.Frozen.Strategy, result.Frozen.DevAccuracy, result.Frozen.Plan, result.Frozen.Audit, headTensors: 4);
        AssertFullRun(result.Full.Strategy, result.Full.DevAccuracy, result.Full.Audit);
        // RobertaClassificationHead reads the first token, so BERT's pooler gets no gradient and stays frozen.
        Assert.All(result.Full.Audit.Entries.Where(e => e.Group == ParameterGroups.Pooler), e => Assert.False(e.Changed));
        Assert.Equal(101, result.Full.Audit.BackboneChanged);
        // dense (hidden × hidden + hidden) + out_proj (hidden × 2 + 2), hidden = 384.
        Assert.Equal(384 * 384 + 384 + 384 * 2 + 2, HeadParameters(result.Frozen.Plan));
        Assert.Contains("frozen: dev accuracy", output.ToString());
        Assert.Contains("backbone tensors changed: 0; head tensors changed: 4 of 4", output.ToString());
    }

    [Fact]
    public void BertBinaryClassifier_sample_trains_one_logit_with_the_pooler_as_backbone()
    {
        var output = new StringWriter();
        var result = Binary.Program.Run(Binary.SampleOptions.Parse(["--quick"]), output);

        AssertFrozenRun(result.Frozen.Strategy, result.Frozen.DevAccuracy, result.Frozen.Plan, result.Frozen.Audit, headTensors: 2);
        AssertFullRun(result.Full.Strategy, result.Full.DevAccuracy, result.Full.Audit);
        // The head reads the pooled output: the pooler trains in the full run, and every backbone tensor changes.
        Assert.Equal(result.Full.Audit.Entries.Count(e => e.Group != ParameterGroups.Head), result.Full.Audit.BackboneChanged);
        Assert.Equal(384 + 1, HeadParameters(result.Frozen.Plan)); // linear(hidden → 1): one logit
        foreach (var run in new[] { result.Frozen, result.Full })
            Assert.InRange(run.FirstSpamProbability, 0f, 1f);
        Assert.Contains("P(spam) = ", output.ToString());
    }

    [Fact]
    public void Sample_options_reject_an_unknown_option_and_a_bad_number()
    {
        Assert.Contains("--epochs N", Assert.Throws<SharpTuneException>(() => Sequence.SampleOptions.Parse(["--epoch", "2"])).Message);
        Assert.Contains("'zero'", Assert.Throws<SharpTuneException>(() => Binary.SampleOptions.Parse(["--max-length", "zero"])).Message);
        var quick = Binary.SampleOptions.Parse(["--quick", "--epochs", "2"]);
        Assert.Equal((true, 2, 64), (quick.Quick, quick.Epochs, quick.MaxLength));
        Assert.True(File.Exists(Path.Combine(quick.DataDirectory, "train.csv")));
    }

    private static void AssertFrozenRun(string strategy, double accuracy, TrainingPlan plan, AuditReport audit, int headTensors)
    {
        Assert.Equal("frozen", strategy);
        Assert.InRange(accuracy, 0, 1);
        Assert.True(audit.Passed, audit.Summary);
        Assert.Equal(0, audit.BackboneChanged);
        Assert.Equal(headTensors, audit.HeadTensors);
        Assert.Equal(headTensors, audit.HeadChanged);
        Assert.False(plan.BackboneTrains);
    }

    private static void AssertFullRun(string strategy, double accuracy, AuditReport audit)
    {
        Assert.Equal("full", strategy);
        Assert.InRange(accuracy, 0, 1);
        Assert.True(audit.Passed, audit.Summary);
        Assert.Equal(audit.HeadTensors, audit.HeadChanged);
    }

    private static long HeadParameters(TrainingPlan plan) => plan.Rows.Single(r => r.Group == ParameterGroups.Head).Parameters;
}
