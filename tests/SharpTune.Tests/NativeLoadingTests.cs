using SharpTune.Build;
using TorchSharp;

namespace SharpTune.Tests;

public class NativeLoadingTests
{
    [Fact]
    public void Libtorch_loads_and_multiplies_matrices()
    {
        SharpTune.Native.TorchRuntime.EnsureLoaded();
        using var a = torch.tensor(new float[] { 1, 2, 3, 4 }, 2, 2);
        using var product = torch.matmul(a, a);
        Assert.Equal(new float[] { 7, 10, 15, 22 }, product.data<float>().ToArray());
    }

    [Fact]
    public void Output_libLibTorchSharp_is_weak_on_GLIBCXX_3_4_32_where_the_system_lacks_it()
    {
        string library = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).First();
        string? system = ElfVersionPatcher.FindSystemLibStdCxx();
        bool systemHasVersion = system is not null && ElfVersionPatcher.LibraryDefinesVersion(system, "GLIBCXX_3.4.32");
        if (!systemHasVersion)
            Assert.True(ElfVersionPatcher.IsVersionWeakOrAbsent(library, "GLIBCXX_3.4.32"), library);
    }

    [Fact]
    public void Patcher_marks_the_requirement_weak_once_and_leaves_other_versions_alone()
    {
        string shipped = Path.Combine(NuGetPackages(), "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        string copy = Path.Combine(Path.GetTempPath(), $"sharptune-elf-{Guid.NewGuid():N}.so");
        File.Copy(shipped, copy);
        try
        {
            Assert.False(ElfVersionPatcher.IsVersionWeakOrAbsent(copy, "GLIBCXX_3.4.32"));
            Assert.Equal(ElfPatchResult.Patched, ElfVersionPatcher.MarkVersionWeak(copy, "GLIBCXX_3.4.32"));
            Assert.True(ElfVersionPatcher.IsVersionWeakOrAbsent(copy, "GLIBCXX_3.4.32"));
            Assert.Equal(ElfPatchResult.AlreadyWeak, ElfVersionPatcher.MarkVersionWeak(copy, "GLIBCXX_3.4.32"));
            Assert.False(ElfVersionPatcher.IsVersionWeakOrAbsent(copy, "GLIBCXX_3.4.29"));
            Assert.Equal(ElfPatchResult.NotRequired, ElfVersionPatcher.MarkVersionWeak(copy, "GLIBCXX_9.9.99"));
            // Exactly two bytes differ from the shipped file: the one vna_flags field.
            byte[] before = File.ReadAllBytes(shipped), after = File.ReadAllBytes(copy);
            Assert.Equal(before.Length, after.Length);
            Assert.Equal(1, before.Zip(after).Count(pair => pair.First != pair.Second));
        }
        finally { File.Delete(copy); }
    }

    [Fact]
    public void Patcher_rejects_a_file_that_is_not_ELF_with_its_name()
    {
        string path = Path.Combine(Path.GetTempPath(), $"sharptune-notelf-{Guid.NewGuid():N}.so");
        File.WriteAllText(path, "not a library");
        try
        {
            var error = Assert.Throws<InvalidDataException>(() => ElfVersionPatcher.MarkVersionWeak(path, "GLIBCXX_3.4.32"));
            Assert.Contains(path, error.Message);
        }
        finally { File.Delete(path); }
    }

    private static string NuGetPackages() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") ??
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
}
