using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SharpTune.Inference;
using SharpTune.Tests.Inference;

namespace SharpTune.Tests.Cli;

/// <summary>
/// <c>sharptune embed --data F --output …</c> on the tiny model: rows equal to <c>embed --text</c> of each text; a real CLI
/// process killed with SIGKILL mid-file and run again ends with the output of an uninterrupted run; bad flags and files
/// exit 1 with one error line naming the flag or file.
/// </summary>
public sealed class EmbedDataCliTests : IDisposable
{
    private readonly TrainCliHarness cli = new();

    public void Dispose() => cli.Dispose();

    private float[] EmbedOne(string text, params string[] more)
    {
        var (exit, output) = TrainCliHarness.Run(["embed", "--model", cli.ModelDirectory, "--text", text, "--format", "json", .. more]);
        Assert.True(exit == 0, output);
        return JsonDocument.Parse(output).RootElement.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
    }

    [Fact]
    public void Embed_data_writes_the_vectors_of_embed_text_in_input_order()
    {
        string output = cli.PathOf("train.npy");
        var (exit, text) = TrainCliHarness.Run("embed", "--model", cli.ModelDirectory, "--data", cli.TrainFile, "--output", output,
            "--pooling", "cls", "--normalize", "--chunk-size", "10", "--batch-size", "4");
        Assert.True(exit == 0, text);
        Assert.Contains($"Wrote 48 × 32 embeddings of 48 texts to {output}.", text);
        Assert.Contains("embedded 48/48 texts", text);
        var (shape, rows) = CorpusEmbedderTests.ReadNpy(output);
        Assert.Equal([48L, 32L], shape);
        var texts = TinyModels.ToyTexts(48, seed: 1);
        foreach (int i in new[] { 0, 1, 17, 47 })
        {
            float[] alone = EmbedOne(texts[i].Text, "--pooling", "cls", "--normalize");
            double diff = alone.Zip(rows[i], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(diff < 1e-5, $"text {i}: {diff:E2}");
        }
    }

    [Fact]
    public void Embed_data_of_a_txt_file_writes_the_bytes_of_the_same_texts_in_a_csv()
    {
        var texts = TinyModels.ToyTexts(48, seed: 1).Select(e => e.Text).ToList(); // cli.TrainFile's texts, in its order
        string txt = cli.Write("train.txt", string.Join("\n", texts) + "\n");
        string fromCsv = cli.PathOf("from-csv.npy"), fromTxt = cli.PathOf("from-txt.npy");
        string[] flags = ["--pooling", "mean", "--chunk-size", "10", "--batch-size", "4"];
        var (exit, text) = TrainCliHarness.Run(["embed", "--model", cli.ModelDirectory, "--data", cli.TrainFile, "--output", fromCsv, .. flags]);
        Assert.True(exit == 0, text);
        (exit, text) = TrainCliHarness.Run(["embed", "--model", cli.ModelDirectory, "--data", txt, "--output", fromTxt, .. flags]);
        Assert.True(exit == 0, text);
        Assert.Contains($"Wrote 48 × 32 embeddings of 48 texts to {fromTxt}.", text);
        Assert.Equal(File.ReadAllBytes(fromCsv), File.ReadAllBytes(fromTxt));
    }

    [Theory]
    [InlineData("--output|x.txt", "--output: unknown extension '.txt'")]
    [InlineData("--pooling|none", "--pooling none")]
    [InlineData("--chunk-size|0", "--chunk-size must be at least 1")]
    [InlineData("--data-missing", "--data file not found")]
    [InlineData("--existing", "--output exists; pass --overwrite")]
    [InlineData("--text-pair|b", "--text-pair goes with --text")]
    public void Bad_flags_and_files_exit_1_with_one_error_line(string change, string expected)
    {
        string data = cli.TrainFile, output = cli.PathOf("out.npy");
        var extra = new List<string>();
        string[] parts = change.Split('|');
        switch (parts[0])
        {
            case "--output": output = cli.PathOf(parts[1]); break;
            case "--data-missing": data = cli.PathOf("nothing-here.csv"); break;
            case "--existing": File.WriteAllText(output, "old"); break;
            default: extra.AddRange(parts); break;
        }
        var (exit, text) = TrainCliHarness.Run(["embed", "--model", cli.ModelDirectory, "--data", data, "--output", output, .. extra]);
        Assert.Equal(1, exit);
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        if (parts[0] == "--existing") Assert.Equal("old", File.ReadAllText(output));
    }

    [Fact]
    public void A_resume_with_other_flags_is_refused_naming_the_flag()
    {
        string output = cli.PathOf("out.csv");
        // An interrupted run's progress, made by a run that stops after its first chunk.
        using (var encoder = SharpTune.Models.PretrainedEncoder.Load(cli.ModelDirectory))
            Assert.Throws<TimeoutException>(() => new CorpusEmbedder(new Embedder(encoder), new CorpusEmbedderOptions { ChunkSize = 8 })
                .Run(cli.TrainFile, output, new StopAfterFirstChunk()));
        var (exit, text) = TrainCliHarness.Run("embed", "--model", cli.ModelDirectory, "--data", cli.TrainFile, "--output", output, "--normalize");
        Assert.Equal(1, exit);
        Assert.Contains("cannot resume: normalize (--normalize) was false, now true", text);
        Assert.Contains("pass --overwrite", text);
    }

    private sealed class StopAfterFirstChunk : IProgress<CorpusProgress>
    {
        public void Report(CorpusProgress value)
        {
            if (value.Done > 0) throw new TimeoutException("stopped");
        }
    }

    [Fact]
    public async Task A_process_killed_with_SIGKILL_and_run_again_ends_with_the_output_of_an_uninterrupted_run()
    {
        var random = new Random(3);
        string data = cli.Write("many.csv", "text\n" + string.Concat(Enumerable.Range(0, 400).Select(i =>
            string.Join(' ', Enumerable.Range(0, random.Next(2, 40)).Select(_ => TinyModels.Word(random.Next(3, 90)))) + "\n")));
        string[] Args(string output) => ["embed", "--model", cli.ModelDirectory, "--data", data, "--output", output, "--chunk-size", "4"];

        string whole = cli.PathOf("whole.parquet");
        var (exit, text) = TrainCliHarness.Run(Args(whole));
        Assert.True(exit == 0, text);

        string killed = cli.PathOf("killed.parquet");
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli")) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment[SharpTune.Native.TorchRuntime.ThreadsVariable] = SharpTune.Native.TorchRuntime.Threads.ToString(CultureInfo.InvariantCulture);
        foreach (string arg in Args(killed)) start.ArgumentList.Add(arg);
        long doneAtKill;
        using (var process = Process.Start(start)!)
        {
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            var clock = Stopwatch.StartNew();
            // Kill once a few chunks are saved, mid-file.
            while (!process.HasExited && TextsSaved(killed) < 12 && clock.Elapsed < TimeSpan.FromMinutes(3)) Thread.Sleep(1);
            process.Kill(); // SIGKILL: no handler, no finally
            process.WaitForExit();
            Assert.NotEqual(0, process.ExitCode);
        }
        doneAtKill = TextsSaved(killed);
        Assert.True(doneAtKill is >= 12 and < 400, $"killed after {doneAtKill} texts");
        Assert.False(File.Exists(killed), "a killed run leaves no output under the final name");

        (exit, text) = TrainCliHarness.Run(Args(killed));
        Assert.True(exit == 0, text);
        Assert.Contains("continued after", text);
        Assert.False(File.Exists(CorpusEmbedder.ProgressFile(killed)));

        var expected = await CorpusEmbedderTests.ReadParquet(whole);
        var actual = await CorpusEmbedderTests.ReadParquet(killed);
        Assert.Equal(expected.Lines, actual.Lines);
        Assert.Equal(400, actual.Rows.Length);
        double diff = expected.Rows.Zip(actual.Rows, (a, b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max()).Max();
        Assert.True(diff <= 1e-6, $"max |diff| {diff} (resumed after {doneAtKill} texts)");
    }

    // Texts the progress file of an unfinished output records (0 while there is none, or while it is being replaced).
    private static long TextsSaved(string output)
    {
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(CorpusEmbedder.ProgressFile(output)));
            return json.RootElement.GetProperty("texts").GetInt64();
        }
        catch (Exception e) when (e is IOException or JsonException) { return 0; }
    }
}
