using System.Globalization;
using TorchSharp;

namespace SharpTune.Native;

/// <summary>
/// The <c>--device</c> option: cpu, cuda or cuda:N, checked against what this process's libtorch can use, so that a
/// GPU asked of a CPU-only build fails at once with the fix instead of deep inside the first <c>to(device)</c>.
/// </summary>
public static class Devices
{
    /// <summary>The device named by <paramref name="text"/> (case-insensitive), checked to exist.</summary>
    /// <exception cref="SharpTuneException">Not cpu, cuda or cuda:N, or CUDA (that device) is not available.</exception>
    public static torch.Device Parse(string text)
    {
        string name = text.Trim().ToLowerInvariant();
        if (name == "cpu") return torch.CPU;
        int index = -1;
        if (name != "cuda" && !(name.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(name.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out index)))
            throw new SharpTuneException($"--device must be cpu, cuda or cuda:N, got '{text}'.");
        TorchRuntime.EnsureLoaded();
        if (!torch.cuda.is_available())
            throw new SharpTuneException($"--device {text}: CUDA is not available to libtorch: " + (HasCudaLibtorch()
                ? "no NVIDIA GPU or driver is visible to this process."
                : "this build references the CPU-only libtorch; build with -p:SharpTuneTorch=cuda (README: GPUs)."));
        int count = torch.cuda.device_count();
        if (index >= count)
            throw new SharpTuneException($"--device {text}: there are {count} CUDA device(s), numbered from 0.");
        return index < 0 ? torch.CUDA : torch.device(DeviceType.CUDA, index);
    }

    /// <summary>Moves <paramref name="module"/> to <paramref name="device"/> unless its parameters are there already ("cuda" is any cuda:N).</summary>
    public static void PlaceOn(torch.nn.Module module, torch.Device device)
    {
        var first = module.parameters().FirstOrDefault();
        if (first is null || (first.device_type == device.type && (device.index < 0 || first.device_index == device.index))) return;
        module.to(device);
    }

    // libtorch-cuda-* ships libtorch_cuda.so beside libtorch.so; libtorch-cpu-* does not.
    private static bool HasCudaLibtorch()
    {
        string native = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        return File.Exists(Path.Combine(native, "libtorch_cuda.so")) || File.Exists(Path.Combine(AppContext.BaseDirectory, "libtorch_cuda.so"));
    }
}
