using System.Diagnostics;
using System.Text.Json.Nodes;

namespace SharpTune.Tests.Build;

/// <summary>
/// The SharpTuneTorch MSBuild property picks the libtorch package (Directory.Build.props, src/SharpTune/SharpTune.csproj).
/// The CUDA package is not restorable on this machine, so the project is evaluated, not restored or built.
/// </summary>
public sealed class TorchPackageSelectionTests
{
    private static readonly string Project = Path.Combine(SharpTune.Fuzz.FuzzEngine.FindRepoRoot(AppContext.BaseDirectory), "src", "SharpTune", "SharpTune.csproj");

    [Fact]
    public void Default_build_references_the_cpu_libtorch_only()
    {
        var (property, packages, versions) = Evaluate(null);
        Assert.Equal("cpu", property);
        Assert.Contains("libtorch-cpu-linux-x64", packages);
        Assert.DoesNotContain(packages, p => p.StartsWith("libtorch-cuda", StringComparison.Ordinal));
        Assert.Equal("2.10.0", versions["libtorch-cpu-linux-x64"]);
    }

    [Fact]
    public void SharpTuneTorch_cuda_references_the_cuda_12_8_libtorch_that_TorchSharp_0_107_pairs_with()
    {
        var (property, packages, versions) = Evaluate("cuda");
        Assert.Equal("cuda", property);
        Assert.Contains("libtorch-cuda-12.8-linux-x64", packages);
        Assert.DoesNotContain("libtorch-cpu-linux-x64", packages);
        // TorchSharp 0.107.0's build/Dependencies.props: LibTorchVersion 2.10.0, CudaVersionDot 12.8; its own version unchanged.
        Assert.Equal("2.10.0", versions["libtorch-cuda-12.8-linux-x64"]);
        Assert.Equal("0.107.0", versions["TorchSharp"]);
    }

    [Fact]
    public void A_misspelt_SharpTuneTorch_fails_the_build_naming_the_property()
    {
        var (exit, output) = Run($"msbuild \"{Project}\" -t:CollectPackageReferences -p:SharpTuneTorch=gpu -nologo");
        Assert.NotEqual(0, exit);
        Assert.Contains("SharpTuneTorch must be cpu or cuda, got 'gpu'", output);
    }

    // SharpTuneTorch as evaluated, the PackageReference names, and the central PackageVersion of each.
    private static (string Property, List<string> Packages, Dictionary<string, string> Versions) Evaluate(string? torch)
    {
        string setting = torch is null ? "" : $" -p:SharpTuneTorch={torch}";
        var (exit, output) = Run($"msbuild \"{Project}\" -getProperty:SharpTuneTorch -getItem:PackageReference -getItem:PackageVersion{setting}");
        Assert.True(exit == 0, output);
        var json = JsonNode.Parse(output)!;
        var packages = json["Items"]!["PackageReference"]!.AsArray().Select(i => i!["Identity"]!.GetValue<string>()).ToList();
        var versions = json["Items"]!["PackageVersion"]!.AsArray()
            .ToDictionary(i => i!["Identity"]!.GetValue<string>(), i => i!["Version"]!.GetValue<string>());
        return (json["Properties"]!["SharpTuneTorch"]!.GetValue<string>(), packages, versions);
    }

    private static (int Exit, string Output) Run(string arguments)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet", arguments)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output + error.Result);
    }
}
