#pragma warning disable xUnit1031 // the pressure tasks are plain background loops, waited for after training
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>
/// The reproduction of a native failure seen once on a frozen bf16 run under heavy CPU load ("Unknown scalar type",
/// an ExternalException from libtorch). With the GC collecting and finalizing continuously on another thread and a
/// third thread burning CPU, 1 run in 3 of the cls head failed on 2 cores, in THSTensor_add_scalar_
/// ("Expected false to be true … toFloat at c10/core/Scalar.h:140"): a native Scalar read after it was freed.
/// SharpTune passes no scalar to an in-place add on this path, so the suspect is a TorchSharp Scalar (converted
/// implicitly from a double inside the optimizer step) finalized while its handle is still in use.
/// Skipped: about 90 s and non-deterministic; run it by hand when touching the training loop or TorchSharp.
/// </summary>
public sealed class GcPressureReproTests
{
    [Theory(Skip = "Manual reproduction: ~90 s, fails about 1 run in 3 while the TorchSharp Scalar race is open.")]
    [InlineData("cls")]
    [InlineData("mean")]
    public void Frozen_bf16_training_survives_continuous_garbage_collection_and_cpu_load(string head)
    {
        using var stop = new CancellationTokenSource();
        Task[] pressure =
        [
            Task.Run(() => { while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); } }),
            Task.Run(() => { double x = 0; while (!stop.IsCancellationRequested) x += Math.Sqrt(x + 1); }),
        ];
        try
        {
            using var model = TinyModels.Classifier(head);
            var options = new TrainingOptions { Epochs = 60, BatchSize = 8, LearningRates = new(1e-2), Precision = Precision.Bf16, DiskFeatureCache = false };
            var result = new Trainer(model, new FrozenStrategy(), options).Fit(TinyModels.ToyTask(512, seed: 5), TinyModels.ToyTask(64, seed: 6));
            Assert.True(result.UsedFeatureCache);
        }
        finally
        {
            stop.Cancel();
            Task.WaitAll(pressure);
        }
    }
}
