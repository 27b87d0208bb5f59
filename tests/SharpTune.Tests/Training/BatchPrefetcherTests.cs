using System.Collections.Concurrent;
using SharpTune.Strategies;
using SharpTune.Training;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

public class BatchPrefetcherTests
{
    [Fact]
    public void Prefetched_batches_equal_inline_batches_in_order_and_content()
    {
        var data = TinyModels.ToyTask(50, seed: 1);
        var batcher = new Batcher(data, 8);
        var plan = batcher.Plan(seed: 3, epoch: 1);
        using var prefetcher = new BatchPrefetcher(batcher.Make, plan, capacity: 2);
        foreach (int[] indices in plan)
        {
            using Batch expected = batcher.Make(indices);
            using Batch actual = prefetcher.Next();
            Assert.Equal(indices, actual.Indices);
            AssertSame(expected.InputIds, actual.InputIds);
            AssertSame(expected.TokenTypeIds, actual.TokenTypeIds);
            AssertSame(expected.AttentionMask, actual.AttentionMask);
            AssertSame(expected.Targets, actual.Targets);
        }
        Assert.Throws<InvalidOperationException>(() => prefetcher.Next());
    }

    [Fact]
    public void Stopping_early_disposes_the_batches_made_but_not_taken_and_makes_no_more_than_capacity_ahead()
    {
        var data = TinyModels.ToyTask(160, seed: 2);
        var batcher = new Batcher(data, 8);
        var plan = batcher.Plan(seed: 1, epoch: 0);
        var made = new ConcurrentQueue<Batch>();
        Batch Make(int[] indices)
        {
            Batch batch = batcher.Make(indices);
            made.Enqueue(batch);
            return batch;
        }
        var prefetcher = new BatchPrefetcher(Make, plan, capacity: 2);
        using (Batch first = prefetcher.Next()) Assert.Equal(plan[0], first.Indices);
        SpinWait.SpinUntil(() => made.Count >= 3, TimeSpan.FromSeconds(5));
        Thread.Sleep(100); // would the producer run further ahead than it may?
        prefetcher.Dispose();

        // One taken, two queued, at most one more blocked waiting for room.
        Assert.InRange(made.Count, 3, 4);
        Assert.True(plan.Count > 4);
        Assert.All(made, b => Assert.True(b.InputIds.IsInvalid && b.Targets.IsInvalid, $"batch {string.Join(',', b.Indices)} was not disposed"));
    }

    [Fact]
    public void A_failure_while_making_a_batch_is_rethrown_to_the_consumer()
    {
        var data = TinyModels.ToyTask(40, seed: 3);
        var batcher = new Batcher(data, 8);
        var plan = batcher.Plan(seed: 1, epoch: 0);
        int count = 0;
        using var prefetcher = new BatchPrefetcher(indices => ++count == 3 ? throw new InvalidDataException("bad example") : batcher.Make(indices), plan);
        prefetcher.Next().Dispose();
        prefetcher.Next().Dispose();
        var error = Assert.Throws<InvalidDataException>(() => prefetcher.Next());
        Assert.Equal("bad example", error.Message);
    }

    [Fact]
    public void Cancelling_training_mid_epoch_stops_at_once_and_reports_it()
    {
        using var model = TinyModels.Classifier("cls");
        using var stop = new CancellationTokenSource();
        var progress = new Inline(e => { if (e is StepEvent { Step: 2 }) stop.Cancel(); });
        var result = new Trainer(model, new FullStrategy(), new TrainingOptions { Epochs = 2, BatchSize = 4 }, progress)
            .Fit(TinyModels.ToyTask(64, seed: 4), cancellation: stop.Token);
        Assert.Equal("cancelled", result.Stopped);
        Assert.Equal(2, progress.Steps);
    }

    private static void AssertSame(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(expected.data<long>().ToArray(), actual.data<long>().ToArray());
    }

    private sealed class Inline(Action<TrainingEvent> onEvent) : IProgress<TrainingEvent>
    {
        public int Steps { get; private set; }
        public void Report(TrainingEvent value)
        {
            if (value is StepEvent) Steps++;
            onEvent(value);
        }
    }
}
