using SharpTune.Fuzz;

// dotnet run -c Release --project fuzz/SharpTune.Fuzz -- [--cases N] [--kind K] [--seed S]
// Runs N mutated cases per kind (all kinds unless --kind) and the regression corpus; exit code 1 on any failure.
int cases = 200, seed = 20261202;
string? kind = null;
for (int i = 0; i < args.Length; i++)
{
    string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--cases": cases = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); i++; break;
        case "--kind": kind = value; i++; break;
        case "--seed": seed = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); i++; break;
        default: throw new ArgumentException($"unknown option {args[i]}; options: --cases N, --kind K ({string.Join(", ", FuzzEngine.Kinds)}), --seed S");
    }
}
if (kind is not null && !FuzzEngine.Kinds.Contains(kind))
{
    Console.Error.WriteLine($"unknown kind '{kind}'; kinds: {string.Join(", ", FuzzEngine.Kinds)}");
    return 2;
}

var engine = new FuzzEngine(FuzzEngine.FindRepoRoot(AppContext.BaseDirectory));
string work = Path.Combine(Path.GetTempPath(), $"sharptune-fuzz-{Environment.ProcessId}");
int failed = 0;
foreach (string k in kind is null ? FuzzEngine.Kinds : [kind])
{
    foreach (var failure in engine.Replay(k, work))
    {
        failed++;
        Console.WriteLine($"FAIL {k} corpus {failure.Mutations}: {failure.Problem}");
    }
    var report = engine.Run(k, cases, seed, work);
    Console.WriteLine($"{k}: {report.Cases} cases ({report.Loaded} loaded, {report.Rejected} rejected), {report.Failures.Count} failures, {report.Elapsed.TotalSeconds:F1} s");
    foreach (var failure in report.Failures)
    {
        failed++;
        // The first lines of the stack are enough to find the parser; the input is kept in SavedTo.
        string problem = string.Join("\n  ", failure.Problem.Split('\n').Take(6));
        Console.WriteLine($"FAIL {k} case {failure.Case} [{failure.Mutations}] saved to {failure.SavedTo}:\n  {problem}");
    }
}
return failed == 0 ? 0 : 1;
