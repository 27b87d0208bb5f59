using System.Text.Json.Nodes;

namespace SharpTune.Tests.Fixtures;

/// <summary>
/// The Hugging Face reference fixtures copied from ../shared/fixtures/hf (README.md there and here): per architecture a
/// tiny random sequence-classification checkpoint, a token-classification one, the slow tokenizer's files and
/// cases.json with what transformers 4.45.2 computed.
/// </summary>
internal static class HfFixtures
{
    /// <summary>The architectures with fixtures.</summary>
    public static readonly string[] Architectures = ["bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2"];

    /// <summary>tests/SharpTune.Tests/Fixtures/hf, found from the test assembly's directory upwards.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The sequence-classification checkpoint directory of <paramref name="architecture"/>.</summary>
    public static string Directory(string architecture) => Path.Combine(Root, architecture);

    /// <summary>The token-classification checkpoint directory of <paramref name="architecture"/>.</summary>
    public static string TokenDirectory(string architecture) => Path.Combine(Root, architecture, "token-classification");

    private static readonly Dictionary<string, IReadOnlyList<JsonObject>> Loaded = [];

    /// <summary>Every case of cases.json of <paramref name="architecture"/>.</summary>
    public static IReadOnlyList<JsonObject> Cases(string architecture)
    {
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(architecture, out var cases))
            {
                var array = JsonNode.Parse(File.ReadAllText(Path.Combine(Directory(architecture), "cases.json")))!.AsArray();
                Loaded[architecture] = cases = array.Select(c => c!.AsObject()).ToList();
            }
            return cases;
        }
    }

    /// <summary>The case named <paramref name="name"/>.</summary>
    public static JsonObject Case(string architecture, string name) =>
        Cases(architecture).Single(c => c["name"]!.GetValue<string>() == name);

    /// <summary>The cases of the kinds single and pair (one encoded text each).</summary>
    public static IEnumerable<JsonObject> TextCases(string architecture) =>
        Cases(architecture).Where(c => c["kind"]!.GetValue<string>() is "single" or "pair");

    /// <summary>A JSON array of integers.</summary>
    public static long[] Longs(JsonNode? node) => node!.AsArray().Select(v => v!.GetValue<long>()).ToArray();

    /// <summary>A JSON array of numbers, flattened in row-major order.</summary>
    public static float[] Floats(JsonNode? node)
    {
        var values = new List<float>();
        void Walk(JsonNode? n)
        {
            if (n is JsonArray a) foreach (var item in a) Walk(item);
            else values.Add(n!.GetValue<float>());
        }
        Walk(node);
        return values.ToArray();
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "SharpTune.Tests", "Fixtures", "hf");
            if (System.IO.Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException($"tests/SharpTune.Tests/Fixtures/hf not found above {AppContext.BaseDirectory}.");
    }
}
