using System.Text.Json;
using SharpTune.Checkpoints;
using SharpTune.Cli;
using SharpTune.Inference;
using SharpTune.Tests.Parity;
using Spectre.Console;

namespace SharpTune.Tests.Cli;

[Collection(PackagedMiniLMCollection.Name)]
public class CliCommandTests(PackagedMiniLMFixture fixture)
{
    // Runs the CLI against a plain-text console; returns the exit code and everything it printed.
    private static (int Code, string Output) Run(params string[] args)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 200;
        int code = CliApp.Run(args, console);
        return (code, writer.ToString());
    }

    private string TempPath(string name) => Path.Combine(fixture.Root, name + "-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void Inspect_prints_the_architecture_and_22_7_M_parameters_for_MiniLM()
    {
        var (code, output) = Run("inspect", "--model", fixture.ModelDir);
        Assert.True(code == 0, output);
        Assert.Contains("22.7 M", output);
        Assert.Contains("22,713,216", output);
        Assert.Contains("11,918,592", output);  // embeddings
        Assert.Contains("1,774,464", output);   // one layer
        Assert.Contains("147,840", output);     // pooler
        Assert.Contains("layer 5", output);
        Assert.Matches(@"num_attention_heads\s+12", output);
        Assert.Matches(@"hidden_act\s+gelu", output);
        Assert.Matches(@"layer_norm_eps\s+1E-12", output);
    }

    [Fact]
    public void Embed_json_has_the_token_ids_and_384_round_trippable_numbers()
    {
        const string text = "A man is eating food.";
        var (code, output) = Run("embed", "--model", fixture.ModelDir, "--text", text, "--normalize", "--format", "json");
        Assert.True(code == 0, output);
        using var json = JsonDocument.Parse(output);
        var root = json.RootElement;
        Assert.Equal("mean", root.GetProperty("pooling").GetString());
        float[] embedding = root.GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Assert.Equal(384, embedding.Length);
        Assert.Equal(fixture.Encoder.Tokenizer.Encode(text).InputIds, root.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt64()));
        float[] expected = new Embedder(fixture.Encoder, new EmbedderOptions { Normalize = true }).Embed(text).Vector;
        Assert.Equal(expected, embedding); // exact: the printed numbers round-trip
    }

    [Fact]
    public void Embed_json_with_pooling_none_has_one_row_per_token_of_the_pair()
    {
        var (code, output) = Run("embed", "--model", fixture.ModelDir, "--text", "café", "--text-pair", "naïve", "--pooling", "none", "--format", "json");
        Assert.True(code == 0, output);
        var root = JsonDocument.Parse(output).RootElement;
        long[] ids = fixture.Encoder.Tokenizer.Encode("café", "naïve").InputIds;
        Assert.Equal(["[CLS]", "cafe", "[SEP]", "naive", "[SEP]"], fixture.Encoder.Tokenizer.ConvertIdsToTokens(ids));
        Assert.Equal(ids, root.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt64()));
        var rows = root.GetProperty("last_hidden_state").EnumerateArray().ToList();
        Assert.Equal(5, rows.Count);
        Assert.All(rows, r => Assert.Equal(384, r.GetArrayLength()));
        Assert.False(root.TryGetProperty("embedding", out _));
    }

    [Fact]
    public void Embed_text_prints_the_tokens_and_the_vector()
    {
        var (code, output) = Run("embed", "--model", fixture.ModelDir, "--text", "Hello world", "--pooling", "cls");
        Assert.True(code == 0, output);
        Assert.Contains("[CLS] hello world [SEP]", output);
        string vectorLine = output.Split('\n', StringSplitOptions.RemoveEmptyEntries)[2];
        Assert.Equal(384, vectorLine.Split(' ').Select(s => float.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).Count());
    }

    [Fact]
    public void Embed_on_a_missing_model_directory_exits_1_naming_it()
    {
        string missing = TempPath("no-such-model");
        var (code, output) = Run("embed", "--model", missing, "--text", "x");
        Assert.Equal(1, code);
        Assert.StartsWith("error:", output);
        Assert.Contains(missing, output);
    }

    [Theory]
    [InlineData("--pooling", "max", "cls, mean, none")]
    [InlineData("--format", "xml", "json, text")]
    [InlineData("--max-length", "abc", "--max-length")]
    [InlineData("--bogus", "1", "bogus")]
    public void Embed_rejects_bad_options_with_a_clean_message(string option, string value, string expected)
    {
        var (code, output) = Run("embed", "--model", fixture.ModelDir, "--text", "x", option, value);
        Assert.Equal(1, code);
        Assert.StartsWith("error:", output);
        Assert.Contains(expected, output);
        Assert.DoesNotContain("   at ", output); // no stack trace
    }

    [Fact]
    public void Embed_without_text_exits_1()
    {
        var (code, output) = Run("embed", "--model", fixture.ModelDir);
        Assert.Equal(1, code);
        Assert.Contains("--text is required", output);
    }

    [Fact]
    public void Import_onnx_on_a_garbage_file_exits_1_naming_it()
    {
        Directory.CreateDirectory(fixture.Root);
        string onnx = TempPath("garbage") + ".onnx";
        File.WriteAllBytes(onnx, [0xde, 0xad, 0xbe, 0xef, 0x42, 0x00, 0xff, 0x13, 0x37]);
        string vocab = TempPath("vocab") + ".txt";
        PackagedResources.ExtractToFile(PackagedResources.MiniLMAssemblyPath, PackagedResources.MiniLMVocab, vocab);
        string outDir = TempPath("out");
        var (code, output) = Run("import-onnx", "--onnx", onnx, "--vocab", vocab, "--out", outDir);
        Assert.Equal(1, code);
        Assert.StartsWith("error:", output);
        Assert.Contains(onnx, output);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Import_onnx_packaged_writes_a_loadable_directory_and_reports_the_mappings()
    {
        string outDir = TempPath("imported");
        var (code, output) = Run("import-onnx", "--packaged", "--out", outDir);
        Assert.True(code == 0, output);
        Assert.Matches(@"tensors mapped\s+103", output);
        Assert.Contains("matmul+bias", output);
        Assert.Contains("graph: Reshape", output);
        Assert.Contains("notes: none", output);
        var opened = HfModelDirectory.Open(outDir);
        Assert.Equal(384, opened.Config.HiddenSize);
    }

    [Theory]
    [InlineData("inspect", "--model <DIR>")]
    [InlineData("embed", "--max-length <N>")]
    [InlineData("import-onnx", "--packaged")]
    public void Help_of_each_command_lists_its_options(string command, string option)
    {
        var (code, output) = Run(command, "--help");
        Assert.True(code == 0, output);
        Assert.Contains(option, output);
        Assert.DoesNotContain("error:", output);
    }

    [Fact]
    public void Import_onnx_needs_either_packaged_or_both_files()
    {
        var (code, output) = Run("import-onnx", "--onnx", "model.onnx", "--out", TempPath("x"));
        Assert.Equal(1, code);
        Assert.Contains("--onnx and --vocab, or --packaged", output);
    }
}
