using System.Security.Cryptography;
using System.Text.Json.Nodes;
using SharpTune.Tests.Fixtures;
using Xunit.Abstractions;

namespace SharpTune.Tests.Cli;

/// <summary>
/// The CLI under bad input: each case breaks one file (data or model) and runs one command on it. Every case must
/// end with exit code 1 and one readable error line that names the file (and the line, field or key where there is
/// one), print no stack trace, and leave every file it was given — the previous run passed as --out above all — as
/// it was.
/// </summary>
public sealed class BadInputCliTests(TrainCliHarness cli, ITestOutputHelper log) : IClassFixture<TrainCliHarness>
{
    /// <summary>What a case runs, the file its error must name and, where there is one, the line, field or key too.</summary>
    public sealed record Invocation(string[] Args, string File, string? Detail = null);

    /// <summary>A case's own folder, with ways to make the broken inputs in it.</summary>
    public sealed class Workspace(TrainCliHarness cli, string folder)
    {
        /// <summary>A previous run (a copy of the harness's trained run), passed to train as --out: it must survive.</summary>
        public string PreviousRun { get; } = Copy(cli.TrainedRun, System.IO.Path.Combine(folder, "previous-run"));

        /// <summary>The harness's tiny random model directory (read, never changed).</summary>
        public string TinyModel => cli.ModelDirectory;

        public string Path(string name) => System.IO.Path.Combine(folder, name);

        public string Text(string name, string content)
        {
            File.WriteAllText(Path(name), content);
            return Path(name);
        }

        public string Bytes(string name, byte[] content)
        {
            File.WriteAllBytes(Path(name), content);
            return Path(name);
        }

        public string Directory(string name) => System.IO.Directory.CreateDirectory(Path(name)).FullName;

        /// <summary>A copy of the tiny random model directory, broken by <paramref name="breakIt"/>.</summary>
        public string Model(Action<string> breakIt) => Broken(cli.ModelDirectory, "model", breakIt);

        /// <summary>A copy of the trained run directory, broken by <paramref name="breakIt"/>.</summary>
        public string Run(Action<string> breakIt) => Broken(cli.TrainedRun, "run", breakIt);

        /// <summary>A copy of an architecture's HF fixture directory, broken by <paramref name="breakIt"/>.</summary>
        public string Fixture(string architecture, Action<string> breakIt) => Broken(HfFixtures.Directory(architecture), architecture, breakIt);

        public string Train(string model, string train, string? eval = null) =>
            string.Join('\0', new[] { "train", "--model", model, "--train", train }
                .Concat(eval is null ? [] : ["--eval", eval])
                // --overwrite: a run that fails on bad input still leaves the previous run untouched.
                .Concat(["--strategy", "frozen", "--epochs", "1", "--batch-size", "8", "--out", PreviousRun, "--overwrite"]));

        private string Broken(string source, string name, Action<string> breakIt)
        {
            string copy = Copy(source, Path(name));
            breakIt(copy);
            return copy;
        }

        private static string Copy(string source, string target)
        {
            System.IO.Directory.CreateDirectory(target);
            foreach (string file in System.IO.Directory.GetFiles(source))
                File.Copy(file, System.IO.Path.Combine(target, System.IO.Path.GetFileName(file)));
            return target;
        }
    }

    // Ways to break a model directory.
    private static Action<string> SetConfig(string key, JsonNode value, params string[] alsoKeys) => dir =>
    {
        string path = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        foreach (string k in alsoKeys.Prepend(key).Where(k => k == key || config.ContainsKey(k))) config[k] = value.DeepClone();
        File.WriteAllText(path, config.ToJsonString());
    };

    private static Action<string> Delete(params string[] files) => dir =>
    {
        foreach (string file in files) File.Delete(Path.Combine(dir, file));
    };

    private static void Truncate(string dir)
    {
        string path = Path.Combine(dir, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
    }

    private static void DropUnknownToken(string dir)
    {
        string path = Path.Combine(dir, "vocab.txt");
        File.WriteAllLines(path, File.ReadAllLines(path).Where(l => l != "[UNK]"));
    }

    private static string SizeKey(string architecture) => architecture == "distilbert" ? "dim" : "hidden_size";

    private static string[] TokenizerFiles(string architecture) => architecture switch
    {
        "roberta" => ["vocab.json", "merges.txt"],
        "xlm-roberta" => ["sentencepiece.bpe.model"],
        "deberta-v2" => ["spm.model"],
        _ => ["vocab.txt"],
    };

    private static readonly byte[] Binary = [.. Enumerable.Range(0, 512).Select(i => (byte)(i * 37 % 256)), 0, 0, 0xFF, 0xFE];

    private static void Write(string dir, string file, byte[] content) => File.WriteAllBytes(Path.Combine(dir, file), content);

    // Files of any architecture that are not what their name says.
    private static readonly Dictionary<string, (Action<string> Break, string File, string? Detail)> BrokenFiles = new()
    {
        ["config.json missing"] = (Delete("config.json"), "config.json", null),
        ["config.json not JSON"] = (dir => Write(dir, "config.json", "{\"model_type\": \"bert\", "u8.ToArray()), "config.json", null),
        ["config.json binary"] = (dir => Write(dir, "config.json", Binary), "config.json", null),
        ["config.json heads not dividing the size"] = (SetConfig("num_attention_heads", 5, "n_heads"), "config.json", null),
        ["model.safetensors missing"] = (Delete("model.safetensors"), "model.safetensors", null),
        ["model.safetensors empty"] = (dir => Write(dir, "model.safetensors", []), "model.safetensors", null),
        ["model.safetensors header cut"] = (dir => Write(dir, "model.safetensors", File.ReadAllBytes(Path.Combine(dir, "model.safetensors"))[..40]), "model.safetensors", null),
        ["model.safetensors binary"] = (dir => Write(dir, "model.safetensors", Binary), "model.safetensors", null),
    };

    private static readonly Dictionary<string, Func<Workspace, Invocation>> Table = BuildTable();

    private static Dictionary<string, Func<Workspace, Invocation>> BuildTable()
    {
        var table = new Dictionary<string, Func<Workspace, Invocation>>();
        void Add(string name, Func<Workspace, Invocation> make) => table.Add(name, make);
        Invocation Train(Workspace w, string model, string train, string file, string? detail = null, string? eval = null) =>
            new(w.Train(model, train, eval).Split('\0'), file, detail);
        const string Good = "text,label\nw1 w2,yes\nw3,no\n";

        // Data files, for train (--train and --eval), evaluate and predict.
        var badData = new Dictionary<string, Func<Workspace, (string Path, string? Detail)>>
        {
            ["missing file"] = w => (w.Path("missing.csv"), null),
            ["directory"] = w => (w.Directory("folder.csv"), "directory"),
            ["empty file"] = w => (w.Text("empty.csv", ""), null),
            ["binary file"] = w => (w.Bytes("binary.csv", Binary), null),
            ["wrong columns"] = w => (w.Text("columns.csv", "sentence_x,category\nw1,yes\n"), "'sentence_x'"),
            ["unclosed quote"] = w => (w.Text("quote.csv", "text,label\nw1,yes\n\"w2,no\n"), ":3"),
            ["broken JSON line"] = w => (w.Text("broken.jsonl", "{\"text\": \"w1\", \"label\": \"yes\"}\n{\"text\": \n"), ":2"),
        };
        foreach (var (what, make) in badData)
        {
            Add($"train --train {what}", w => { var (p, d) = make(w); return Train(w, w.TinyModel, p, p, d); });
            Add($"train --eval {what}", w => { var (p, d) = make(w); return Train(w, w.TinyModel, w.Text("good.csv", Good), p, d, eval: p); });
            Add($"evaluate {what}", w => { var (p, d) = make(w); return new(["evaluate", "--model", w.PreviousRun, "--data", p], p, d); });
            Add($"predict {what}", w =>
            {
                var (p, d) = make(w);
                return new(["predict", "--model", w.PreviousRun, "--data", p, "--output", w.Text("predictions.csv", "kept\n")], p, d);
            });
        }
        // Plain text (one text per line) has no labels: train and evaluate refuse it, naming the formats that have them.
        var plainText = new Dictionary<string, Func<Workspace, string>>
        {
            ["plain text"] = w => w.Text("texts.txt", "w1 w2\nw3\n"),
            ["plain text with an empty line"] = w => w.Text("lines.txt", "w1 w2 w4\n\nw3\n"),
        };
        foreach (var (what, make) in plainText)
        {
            Add($"train --train {what}", w => { string p = make(w); return Train(w, w.TinyModel, p, p, ".csv, .tsv or .jsonl"); });
            Add($"train --eval {what}", w => { string p = make(w); return Train(w, w.TinyModel, w.Text("good.csv", Good), p, ".csv, .tsv or .jsonl", eval: p); });
            Add($"evaluate {what}", w => { string p = make(w); return new(["evaluate", "--model", w.PreviousRun, "--data", p], p, ".csv, .tsv or .jsonl"); });
        }
        Add("train --eval unknown label", w =>
        {
            string eval = w.Text("eval.csv", "text,label\nw1,yes\nw2,perhaps\n");
            return Train(w, w.TinyModel, w.Text("good.csv", Good), eval, ":3:", eval);
        });
        Add("evaluate unknown label", w =>
        {
            string data = w.Text("data.csv", "text,label\nw1,yes\nw2,perhaps\n");
            return new(["evaluate", "--model", w.PreviousRun, "--data", data], data, ":3:");
        });

        // Model directories: the tiny random model for train, the trained run for evaluate and predict.
        var badModel = new Dictionary<string, (Action<string> Break, string File, string? Detail)>
        {
            ["negative hidden_size"] = (SetConfig("hidden_size", -32), "config.json", "hidden_size"),
            ["unknown model_type"] = (SetConfig("model_type", "gpt-17"), "config.json", "model_type"),
            ["vocabulary without [UNK]"] = (DropUnknownToken, "vocab.txt", "[UNK]"),
            ["weights not matching config"] = (SetConfig("hidden_size", 64), "model.safetensors", "embeddings.word_embeddings.weight"),
            ["truncated weights"] = (Truncate, "model.safetensors", null),
            ["missing tokenizer"] = (Delete("vocab.txt"), "vocab.txt", null),
        };
        foreach (var (what, (breakIt, file, detail)) in badModel.Concat(BrokenFiles))
        {
            Add($"train model {what}", w =>
            {
                string model = w.Model(breakIt);
                return Train(w, model, w.Text("good.csv", Good), Path.Combine(model, file), detail);
            });
            Add($"evaluate run {what}", w =>
            {
                string run = w.Run(breakIt);
                return new(["evaluate", "--model", run, "--data", w.Text("good.csv", Good)], Path.Combine(run, file), detail);
            });
            Add($"predict run {what}", w =>
            {
                string run = w.Run(breakIt);
                return new(["predict", "--model", run, "--text", "w1 w2"], Path.Combine(run, file), detail);
            });
        }

        // --model that is not a directory.
        var notADirectory = new Dictionary<string, Func<Workspace, (string Path, string Detail)>>
        {
            ["missing"] = w => (w.Path("no-model"), "not found"),
            ["a file"] = w => (w.Text("model.txt", "not a model"), "is a file"),
        };
        foreach (var (what, make) in notADirectory)
        {
            Add($"train --model {what}", w => { var (p, d) = make(w); return Train(w, p, w.Text("good.csv", Good), p, d); });
            Add($"evaluate --model {what}", w => { var (p, d) = make(w); return new(["evaluate", "--model", p, "--data", w.Text("good.csv", Good)], p, d); });
            Add($"predict --model {what}", w => { var (p, d) = make(w); return new(["predict", "--model", p, "--text", "w1"], p, d); });
            Add($"embed --model {what}", w => { var (p, d) = make(w); return new(["embed", "--model", p, "--text", "w1"], p, d); });
            Add($"inspect --model {what}", w => { var (p, d) = make(w); return new(["inspect", "--model", p], p, d); });
        }

        // The six architectures' fixtures, for embed and inspect.
        foreach (string arch in HfFixtures.Architectures)
        {
            string size = SizeKey(arch);
            var broken = new Dictionary<string, (Action<string> Break, string File, string? Detail)>
            {
                [$"negative {size}"] = (SetConfig(size, -32), "config.json", size),
                ["unknown model_type"] = (SetConfig("model_type", "gpt-17"), "config.json", "model_type"),
                // DeBERTa's config requires pooler_hidden_size = hidden_size: both change, so that the weights are what fails.
                [$"weights not matching {size}"] = (SetConfig(size, 64, "pooler_hidden_size"), "model.safetensors", null),
                ["truncated weights"] = (Truncate, "model.safetensors", null),
                ["missing tokenizer"] = (Delete(TokenizerFiles(arch)), arch, TokenizerFiles(arch)[0]),
            };
            foreach (var (what, (breakIt, file, detail)) in broken.Concat(BrokenFiles))
                foreach (string command in new[] { "embed", "inspect" })
                    Add($"{command} {arch} {what}", w =>
                    {
                        string model = w.Fixture(arch, breakIt);
                        string[] args = command == "embed" ? ["embed", "--model", model, "--text", "hello"] : ["inspect", "--model", model];
                        return new(args, Path.Combine(model, file), detail);
                    });
        }
        return table;
    }

    public static TheoryData<string> Cases => new(Table.Keys);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Bad_input_exits_1_with_one_error_line_naming_the_file_and_changes_no_file(string name)
    {
        // A folder name that does not repeat the case's words, which the error must name by itself.
        string folder = cli.PathOf("bad-" + Convert.ToHexString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(name)))[..12]);
        Directory.CreateDirectory(folder);
        var workspace = new Workspace(cli, Path.Combine(folder, "case"));
        Directory.CreateDirectory(workspace.Path(""));
        Invocation invocation = Table[name](workspace);
        var before = Hashes(folder);

        var (exit, output) = TrainCliHarness.Run(invocation.Args);

        Assert.True(exit == 1, $"exit {exit}:\n{output}");
        Assert.DoesNotContain("   at ", output);
        // One error, and it ends the output (the console wraps a long message at its width: those lines are its continuation).
        string[] lines = output.TrimEnd().Split('\n');
        int first = Array.FindIndex(lines, l => l.Contains("error:", StringComparison.Ordinal));
        Assert.True(first >= 0 && lines.Count(l => l.Contains("error:", StringComparison.Ordinal)) == 1, $"expected one error:\n{output}");
        Assert.StartsWith("error: ", lines[first]);
        string error = string.Join(" ", lines[first..]);
        log.WriteLine(error);
        string file = Path.GetFileName(invocation.File);
        Assert.True(error.Contains(file, StringComparison.Ordinal), $"the error does not name {file}:\n{output}");
        if (invocation.Detail is { } detail)
            Assert.True(error.Contains(detail, StringComparison.Ordinal), $"the error does not name {detail}:\n{output}");
        Assert.Equal(before, Hashes(folder));
    }

    /// <summary>Relative path → SHA-256 of every file under <paramref name="folder"/>.</summary>
    private static SortedDictionary<string, string> Hashes(string folder) => new(
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))),
        StringComparer.Ordinal);
}
