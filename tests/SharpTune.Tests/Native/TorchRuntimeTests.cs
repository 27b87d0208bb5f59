using SharpTune.Native;
using SharpTune.Strategies;
using SharpTune.Training;
using TorchSharp;

namespace SharpTune.Tests.Native;

public class TorchRuntimeTests
{
    [Fact]
    public void Thread_count_defaults_to_the_logical_CPUs_and_SHARPTUNE_THREADS_overrides_it()
    {
        Assert.Equal(8, TorchRuntime.ResolveThreads(null, 8));
        Assert.Equal(8, TorchRuntime.ResolveThreads(" ", 8));
        Assert.Equal(3, TorchRuntime.ResolveThreads("3", 8));
        foreach (string bad in new[] { "0", "-2", "many" })
        {
            var error = Assert.Throws<SharpTuneException>(() => TorchRuntime.ResolveThreads(bad, 8));
            Assert.Contains("SHARPTUNE_THREADS", error.Message);
            Assert.Contains(bad, error.Message);
        }
    }

    [Fact]
    public void Loading_sets_libtorch_to_the_configured_thread_count()
    {
        TorchRuntime.EnsureLoaded();
        Assert.Equal(TorchRuntime.Threads, torch.get_num_threads());
        if (Environment.GetEnvironmentVariable(TorchRuntime.ThreadsVariable) is null)
            Assert.Equal(Environment.ProcessorCount, TorchRuntime.Threads);
    }

    [Fact]
    public void A_configured_thread_count_is_what_a_training_thread_runs_with()
    {
        int original = TorchRuntime.Threads;
        int wanted = original == 1 ? 2 : 1;
        try
        {
            TorchRuntime.Configure(wanted);
            int seen = 0;
            var worker = new Thread(() =>
            {
                using var model = TinyModels.Classifier("cls");
                var progress = new Inline(e => { if (e is StepEvent) seen = torch.get_num_threads(); });
                new Trainer(model, new FullStrategy(), new TrainingOptions { Epochs = 1, BatchSize = 8 }, progress).Fit(TinyModels.ToyTask(8, seed: 1));
            });
            worker.Start();
            worker.Join();
            Assert.Equal(wanted, seen);
            Assert.Throws<SharpTuneException>(() => TorchRuntime.Configure(0));
        }
        finally
        {
            TorchRuntime.Configure(original);
        }
    }

    private sealed class Inline(Action<TrainingEvent> onEvent) : IProgress<TrainingEvent>
    {
        public void Report(TrainingEvent value) => onEvent(value);
    }
}
