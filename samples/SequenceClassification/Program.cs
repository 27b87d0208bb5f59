using System.Diagnostics;
using SharpTune;
using SharpTune.Data;
using SharpTune.Strategies;
using SharpTune.Training;

namespace Samples.SequenceClassification;

/// <summary>How one strategy did: dev accuracy, wall time, the parameter table and the freeze audit.</summary>
public sealed record StrategyRun(string Strategy, double DevAccuracy, double Seconds, TrainingPlan Plan, AuditReport Audit);

/// <summary>The two runs of the sample: backbone frozen, then fully fine-tuned.</summary>
public sealed record SampleResult(StrategyRun Frozen, StrategyRun Full);

/// <summary>
/// "RobertaModel + RobertaClassificationHead" in C#: the packaged all-MiniLM-L6-v2 encoder with the head of
/// <see cref="RobertaClassificationHead"/>, trained on data/spam-sample once frozen and once fully.
/// </summary>
public static class Program
{
    /// <summary>dotnet run -- [--quick] [--epochs N] [--max-length N] [--data DIR]</summary>
    public static int Main(string[] args)
    {
        try
        {
            Run(SampleOptions.Parse(args), Console.Out);
            return 0;
        }
        catch (SharpTuneException e)
        {
            Console.Error.WriteLine(e.Message);
            return 1;
        }
    }

    /// <summary>Trains a fresh model per strategy and reports dev accuracy and the freeze audit of each.</summary>
    public static SampleResult Run(SampleOptions options, TextWriter output)
    {
        var train = TextDataset.Load(Path.Combine(options.DataDirectory, "train.csv")).Examples;
        var dev = TextDataset.Load(Path.Combine(options.DataDirectory, "dev.csv")).Examples;
        if (options.Quick) (train, dev) = (train.Take(32).ToList(), dev.Take(32).ToList());
        var labels = LabelSet.FromTraining(train); // ham, spam

        StrategyRun Train(string strategyName)
        {
            // A fresh model for each strategy: the encoder (--model DIR, e.g. a RoBERTa; null = the packaged
            // all-MiniLM-L6-v2) + our head.
            using var classifier = TextClassifier.Create(options.Model,
                (hidden, numLabels) => new RobertaClassificationHead(hidden, numLabels), labels, maxLength: options.MaxLength);
            var strategy = Strategy.Parse(strategyName);
            var settings = new TrainingOptions
            {
                Epochs = options.Epochs,
                BatchSize = 16,
                // Each strategy's default rate (full 1e-4, frozen 1e-2). The head starts from random weights, so unless
                // told otherwise it learns at no less than 1e-3, faster than the pretrained layers under it.
                LearningRates = new LearningRates(strategy.DefaultLearningRate),
            };
            output.WriteLine(StrategyApplier.Apply(classifier.Model, strategy, rates: settings.LearningRates).ToMarkdown()); // what will train

            var clock = Stopwatch.StartNew();
            TrainingResult result = classifier.Train(train, dev, strategy, settings);
            double accuracy = result.BestEvaluation!.Metrics[MetricNames.Accuracy];
            output.WriteLine($"{strategyName}: dev accuracy {accuracy:P1} on {dev.Count} e-mails, {clock.Elapsed.TotalSeconds:F1} s");

            // Did the backbone stay frozen? The audit compared every tensor with its value before training.
            AuditReport audit = result.Audit;
            output.WriteLine(audit.Summary);
            output.WriteLine($"backbone tensors changed: {audit.BackboneChanged}; head tensors changed: {audit.HeadChanged} of {audit.HeadTensors}");
            output.WriteLine();
            return new StrategyRun(strategyName, accuracy, clock.Elapsed.TotalSeconds, result.Plan, audit);
        }

        return new SampleResult(Train("frozen"), Train("full"));
    }
}
