using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace SharpTune.Training;

/// <summary>
/// Makes the batches of a plan on a background thread, at most <c>capacity</c> ahead of the consumer, so that
/// padding and tensor building overlap the step. <see cref="Next"/> returns them in plan order; the caller owns
/// (and disposes) each batch it takes. <see cref="Dispose"/> stops the producer and disposes every batch made but
/// not taken — an epoch that ends early (cancellation, early stopping) leaks nothing.
/// </summary>
/// <remarks>
/// The batches' CPU tensors are created on the producer thread, outside any dispose scope (scopes are per
/// thread), so no scope of the consumer frees them before they are used.
/// </remarks>
public sealed class BatchPrefetcher : IDisposable
{
    private readonly BlockingCollection<Batch> ready;
    private readonly CancellationTokenSource stop = new();
    private readonly Task producer;
    private Exception? failure;

    /// <summary>Starts making the batches of <paramref name="plan"/> with <paramref name="make"/> (e.g. <see cref="Batcher.Make"/>).</summary>
    public BatchPrefetcher(Func<int[], Batch> make, IReadOnlyList<int[]> plan, int capacity = 3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ready = new BlockingCollection<Batch>(capacity);
        producer = Task.Factory.StartNew(() => Produce(make, plan), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The next batch of the plan, waiting for it if needed; rethrows the producer's exception.</summary>
    /// <exception cref="InvalidOperationException">The plan has no batch left.</exception>
    public Batch Next()
    {
        if (ready.TryTake(out Batch? batch, Timeout.Infinite)) return batch;
        if (failure is not null) ExceptionDispatchInfo.Throw(failure);
        throw new InvalidOperationException("The batch plan has no batch left.");
    }

    /// <summary>Stops the producer and disposes the batches made but not taken.</summary>
    public void Dispose()
    {
        stop.Cancel();
        producer.Wait();
        while (ready.TryTake(out Batch? left)) left.Dispose();
        ready.Dispose();
        stop.Dispose();
    }

    private void Produce(Func<int[], Batch> make, IReadOnlyList<int[]> plan)
    {
        try
        {
            foreach (int[] indices in plan)
            {
                if (stop.IsCancellationRequested) return;
                Batch batch = make(indices);
                try
                {
                    ready.Add(batch, stop.Token);
                }
                catch (OperationCanceledException)
                {
                    batch.Dispose();
                    return;
                }
            }
        }
        catch (Exception e)
        {
            failure = e;
        }
        finally
        {
            ready.CompleteAdding();
        }
    }
}
