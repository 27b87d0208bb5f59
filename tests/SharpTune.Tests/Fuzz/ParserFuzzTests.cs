using SharpTune.Fuzz;

namespace SharpTune.Tests.Fuzz;

/// <summary>
/// A CI-sized run of the parser fuzzer (fuzz/SharpTune.Fuzz) per input kind, plus the regression inputs of
/// fuzz/corpus/: every case must load or fail with a SharpTuneException naming the file, in time and without a
/// huge allocation. Long runs: <c>dotnet run -c Release --project fuzz/SharpTune.Fuzz -- --cases 10000</c>.
/// </summary>
public sealed class ParserFuzzTests : IDisposable
{
    private const int CasesPerKind = 120;
    private const int Seed = 20261202;

    private readonly string _work = Path.Combine(Path.GetTempPath(), $"sharptune-fuzz-tests-{Guid.NewGuid():N}");
    private readonly FuzzEngine _engine = new(FuzzEngine.FindRepoRoot(AppContext.BaseDirectory));

    public static TheoryData<string> Kinds => [.. FuzzEngine.Kinds];

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Mutated_inputs_load_or_fail_with_an_error_naming_the_file(string kind)
    {
        var report = _engine.Run(kind, CasesPerKind, Seed, _work);
        Assert.True(report.Failures.Count == 0, Describe(report.Failures));
        Assert.Equal(CasesPerKind, report.Cases);
        Assert.True(report.Loaded > 0, $"{kind}: no case loaded, so the seeds are broken");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Regression_inputs_of_the_corpus_fail_with_an_error_naming_the_file(string kind)
    {
        var failures = _engine.Replay(kind, _work);
        Assert.True(failures.Count == 0, Describe(failures));
    }

    private static string Describe(IReadOnlyList<FuzzFailure> failures) =>
        string.Join("\n", failures.Select(f => $"{f.Kind} case {f.Case} [{f.Mutations}] ({f.SavedTo}): {f.Problem}"));

    public void Dispose()
    {
        if (Directory.Exists(_work)) Directory.Delete(_work, recursive: true);
    }
}
