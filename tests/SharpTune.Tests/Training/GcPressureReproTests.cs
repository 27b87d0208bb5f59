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
/// The cause: TorchSharp's implicit Scalars (here inside <c>AdamW.step</c>'s <c>add_(eps)</c>) are unreachable once their
/// handle is read, so a collection started by another thread could free one mid-call. SharpTune now has its own AdamW and
/// passes only scalars it keeps alive (<c>SharpTune.Native.Scalars</c>; <c>ScalarLifetimeTests</c> guards it from the IL).
/// After that change: 3 runs of both cases passed at load average 20 (2026-12-02), where 1 run in 3 had failed.
/// Skipped: about 60–90 s and a pass proves little on its own; run it by hand when touching the training loop or TorchSharp.
/// </summary>
public sealed class GcPressureReproTests
{
    [Theory(Skip = "Manual reproduction: ~90 s; the race it reproduced is closed (ScalarLifetimeTests guards the cause).")]
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
