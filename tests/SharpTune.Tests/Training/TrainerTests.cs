using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

public class TrainerTests
{
    private sealed class Recorder : IProgress<TrainingEvent>
    {
        public List<TrainingEvent> Events { get; } = [];
        public void Report(TrainingEvent value) => Events.Add(value);
    }

    [Fact]
    public void Loss_decreases_on_a_small_learnable_task()
    {
        using var model = TinyModels.Classifier("cls");
        var recorder = new Recorder();
        var options = new TrainingOptions { Epochs = 10, BatchSize = 16, LearningRates = new(3e-3), WarmupRatio = 0.1 };
        var train = TinyModels.ToyTask(128, seed: 3);
        var result = new Trainer(model, new FullStrategy(), options, recorder).Fit(train, TinyModels.ToyTask(64, seed: 4));
        var steps = recorder.Events.OfType<StepEvent>().ToList();
        Assert.True(steps.Last().Loss < steps.First().Loss * 0.7, $"first {steps.First().Loss}, last {steps.Last().Loss}");
        Assert.True(result.BestEvaluation!.Metrics["accuracy"] > 0.8, $"accuracy {result.BestEvaluation.Metrics["accuracy"]}");
        Assert.Equal(10, result.Evaluations.Count);
    }

    [Fact]
    public void Early_stopping_restores_the_best_epoch()
    {
        // Eval labels are the opposite of the training rule: every epoch of training makes eval loss worse,
        // so the best evaluation is the first and patience 1 stops at the second.
        using var model = TinyModels.Classifier("cls", dropout: 0);
        var options = new TrainingOptions { Epochs = 6, BatchSize = 16, LearningRates = new(2e-3), EarlyStoppingPatience = 1, MetricForBest = "loss" };
        var train = TinyModels.ToyTask(96, seed: 5);
        var eval = TinyModels.ToyTask(48, seed: 6, flipLabels: true);
        var recorder = new Recorder();
        var result = new Trainer(model, new FullStrategy(), options, recorder).Fit(train, eval);
        Assert.Equal("early stopping", result.Stopped);
        Assert.Equal(2, result.Evaluations.Count);
        Assert.Same(result.Evaluations[0], result.BestEvaluation);
        Assert.True(result.Evaluations[1].Metrics["loss"] > result.Evaluations[0].Metrics["loss"]);
        var now = Evaluator.Run(model, eval, 16, CPU);
        Assert.Equal(result.Evaluations[0].Metrics["loss"], now.Loss, 5);
        Assert.Contains(recorder.Events, e => e is EarlyStoppingEvent { BestEpoch: 0 });
    }

    [Fact]
    public void Gradual_unfreezing_with_early_stopping_keeps_exactly_the_evaluated_model()
    {
        // Eval labels inverted: training makes eval worse, so the best evaluation comes before epoch 2 opens layer 0
        // (gradual on 2 layers: epoch 0 the head, 1 layer 1, 2 layer 0). The kept model must be the evaluated one: layer 0
        // back at its start, and the audit judging what had trained by then.
        using var model = TinyModels.Classifier("cls", dropout: 0);
        var options = new TrainingOptions { Epochs = 3, BatchSize = 16, LearningRates = new(2e-3), EarlyStoppingPatience = 2, MetricForBest = "loss" };
        var eval = TinyModels.ToyTask(48, seed: 6, flipLabels: true);
        var result = new Trainer(model, Strategy.Parse("gradual"), options).Fit(TinyModels.ToyTask(96, seed: 5), eval);
        Assert.True(result.BestEvaluation!.Epoch < 2, $"best epoch {result.BestEvaluation.Epoch}");
        Assert.Equal(3, result.Evaluations.Count);
        Assert.True(result.Audit.Passed, result.Audit.Summary);
        Assert.All(result.Audit.Entries.Where(e => e.Group == "layer 0"), e => Assert.False(e.Changed, e.Key));
        Assert.Equal(result.BestEvaluation.Metrics["loss"], Evaluator.Run(model, eval, 16, CPU).Loss, 5);
    }

    [Fact]
    public void Steps_after_the_last_and_best_evaluation_are_undone()
    {
        // 6 steps, evaluations at steps 4 only (--eval-steps 4): steps 5 and 6 train after the best evaluation.
        using var model = TinyModels.Classifier("cls", dropout: 0);
        var data = TinyModels.ToyTask(48, seed: 5);
        var options = new TrainingOptions { Epochs = 1, BatchSize = 8, LearningRates = new(2e-3), EvalEverySteps = 4, MetricForBest = "loss" };
        var result = new Trainer(model, new FullStrategy(), options).Fit(data, data);
        var only = Assert.Single(result.Evaluations);
        Assert.Equal(4, only.Step);
        Assert.Equal(only.Metrics["loss"], Evaluator.Run(model, data, 8, CPU).Loss, 6);
        Assert.True(result.Audit.Passed, result.Audit.Summary);
    }

    [Fact]
    public void Gradient_accumulation_of_4x8_equals_one_batch_of_32()
    {
        var data = TinyModels.ToyTask(32, seed: 7);
        Dictionary<string, Tensor> Gradients(int batchSize, int accumulation)
        {
            var model = TinyModels.Classifier("cls", dropout: 0, seed: 11);
            StrategyApplier.Apply(model, new FullStrategy());
            model.train();
            var trainer = new Trainer(model, new FullStrategy(), new TrainingOptions { BatchSize = batchSize, GradientAccumulationSteps = accumulation });
            var batcher = new Batcher(data, batchSize);
            foreach (int[] indices in batcher.Plan(seed: 1, epoch: 0).Take(accumulation))
            {
                using Batch batch = batcher.Make(indices);
                trainer.ForwardBackward(batch, null, data.Task, 1.0 / accumulation);
            }
            return model.named_parameters().Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }
        var accumulated = Gradients(8, 4);
        var whole = Gradients(32, 1);
        Assert.Equal(whole.Keys.Order(), accumulated.Keys.Order());
        foreach (var (name, gradient) in whole)
            Assert.True(gradient.allclose(accumulated[name], rtol: 0, atol: 1e-5), $"{name}: max diff {(gradient - accumulated[name]).abs().max().item<float>()}");
    }

    [Theory]
    [InlineData(0, 5, 4, 0.25)]
    [InlineData(3, 5, 4, 0.25)]
    [InlineData(4, 5, 4, 1.0)]   // the last group holds one batch: its gradient is that batch's, not a quarter of it
    [InlineData(8, 10, 4, 0.5)]  // 10 batches in groups 4, 4, 2
    [InlineData(2, 3, 1, 1.0)]
    public void Gradient_accumulation_averages_each_group_over_its_own_size(int batch, int batches, int accumulation, double scale) =>
        Assert.Equal(scale, Trainer.AccumulationScale(batch, batches, accumulation));

    [Fact]
    public void Frozen_cached_training_gives_the_same_head_weights_as_uncached_training()
    {
        Dictionary<string, Tensor> HeadAfterTraining(bool cache)
        {
            var model = TinyModels.Classifier("mean", dropout: 0, seed: 21);
            var options = new TrainingOptions { Epochs = 3, BatchSize = 8, LearningRates = new(1e-3), CacheFrozenFeatures = cache, DiskFeatureCache = false };
            var result = new Trainer(model, new FrozenStrategy(), options).Fit(TinyModels.ToyTask(40, seed: 8));
            Assert.Equal(cache, result.UsedFeatureCache);
            return model.Head.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        }
        var cached = HeadAfterTraining(true);
        var uncached = HeadAfterTraining(false);
        foreach (var (name, weight) in cached)
            Assert.True(weight.allclose(uncached[name], rtol: 0, atol: 1e-5), $"{name}: max diff {(weight - uncached[name]).abs().max().item<float>()}");
    }

    [Fact]
    public void Frozen_evaluation_from_cached_features_equals_running_the_whole_model()
    {
        using var model = TinyModels.Classifier("cls", dropout: 0, seed: 4);
        var eval = TinyModels.ToyTask(24, seed: 12);
        var options = new TrainingOptions { Epochs = 2, BatchSize = 8, LearningRates = new(1e-2), DiskFeatureCache = false };
        var result = new Trainer(model, new FrozenStrategy(), options).Fit(TinyModels.ToyTask(32, seed: 11), eval);
        Assert.True(result.UsedFeatureCache);
        var whole = Evaluator.Run(model, eval, 8, CPU);
        Assert.Equal(whole.Loss, result.BestEvaluation!.Metrics["loss"], 5);
        Assert.Equal(whole.Metrics["accuracy"], result.BestEvaluation.Metrics["accuracy"]);
    }

    [Fact]
    public void Same_seed_repeats_a_run()
    {
        float[] Run()
        {
            using var model = TinyModels.Classifier("cls", seed: 3);
            new Trainer(model, new FullStrategy(), new TrainingOptions { Epochs = 1, BatchSize = 8, Seed = 9 }).Fit(TinyModels.ToyTask(24, seed: 9));
            return model.Head.named_parameters().First(p => p.name == "out_proj.weight").parameter.data<float>().ToArray();
        }
        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void Length_bucketing_reduces_padding()
    {
        var data = TinyModels.ToyTask(400, seed: 10);
        double bucketed = new Batcher(data, 16, bucketing: true).PaddingRatio(new Batcher(data, 16, bucketing: true).Plan(1, 0));
        double plain = new Batcher(data, 16, bucketing: false).PaddingRatio(new Batcher(data, 16, bucketing: false).Plan(1, 0));
        Assert.True(bucketed < 1.1, $"bucketed {bucketed}");
        Assert.True(plain > 1.3, $"plain {plain}");
    }

    [Fact]
    public void Bad_options_name_the_option()
    {
        var error = Assert.Throws<SharpTuneException>(() => new TrainingOptions { BatchSize = 0 }.Validate());
        Assert.Contains("--batch-size", error.Message);
    }
}
