using System.Globalization;
using System.Text.Json.Nodes;
using SharpTune.Data;

namespace SharpTune.Tests.Cli;

public sealed class PredictCommandTests(TrainCliHarness cli) : IClassFixture<TrainCliHarness>
{
    [Fact]
    public void Predict_on_unlabelled_data_writes_a_csv_with_the_label_and_a_probability_per_class()
    {
        var texts = TinyModels.ToyTexts(10, seed: 9).Select(e => e.Text).ToList();
        string data = cli.Write("unlabelled.csv", "text\n" + string.Concat(texts.Select(t => t + "\n")));
        string output = cli.PathOf("out/predictions.csv");

        var (exit, console) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--data", data, "--output", output);

        Assert.True(exit == 0, console);
        Assert.Contains("Wrote 10 predictions", console);
        string[] lines = File.ReadAllLines(output);
        Assert.Equal("text,label,p_no,p_yes", lines[0]);
        Assert.Equal(11, lines.Length);
        for (int i = 1; i < lines.Length; i++)
        {
            string[] fields = lines[i].Split(',');
            Assert.Equal(texts[i - 1], fields[0]);
            double no = double.Parse(fields[2], CultureInfo.InvariantCulture), yes = double.Parse(fields[3], CultureInfo.InvariantCulture);
            Assert.Equal(1.0, no + yes, 5);
            Assert.Equal(yes > no ? "yes" : "no", fields[1]);
        }
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(output)!)); // no temporary file left behind
    }

    [Fact]
    public void Predict_on_a_txt_file_writes_what_the_same_texts_in_a_csv_give_an_empty_line_an_empty_text()
    {
        var texts = TinyModels.ToyTexts(6, seed: 11).Select(e => e.Text).ToList();
        texts.Insert(2, "");
        string txt = cli.Write("lines.txt", string.Join("\r\n", texts));
        string csv = cli.Write("lines.csv", "text\n" + string.Concat(texts.Select(t => $"\"{t}\"\n")));
        string fromTxt = cli.PathOf("from-txt.csv"), fromCsv = cli.PathOf("from-csv.csv");

        var (exit, console) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--data", txt, "--output", fromTxt);
        Assert.True(exit == 0, console);
        Assert.Contains("Wrote 7 predictions", console);
        (exit, console) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--data", csv, "--output", fromCsv);
        Assert.True(exit == 0, console);
        Assert.Equal(File.ReadAllText(fromCsv), File.ReadAllText(fromTxt));
        Assert.Equal(texts, TextDataset.Load(fromTxt, new DataOptions { ReadLabels = false }).Examples.Select(e => e.Text));
    }

    [Fact]
    public void Predicted_csv_quotes_commas_quotes_and_line_breaks_and_keeps_the_pair_column()
    {
        string data = cli.Write("pairs.jsonl",
            """
            {"text": "w1, \"w2\"", "text_pair": "w3\nw4", "label": "yes"}
            {"text": "w5", "text_pair": "w6", "label": "no"}

            """);
        string output = cli.PathOf("pairs.csv");

        var (exit, console) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--data", data, "--output", output);

        Assert.True(exit == 0, console);
        Assert.StartsWith("text,text_pair,label,p_no,p_yes\n\"w1, \"\"w2\"\"\",\"w3\nw4\",", File.ReadAllText(output));
        // Read back with the library's RFC 4180 reader: the texts come back exactly.
        var back = TextDataset.Load(output, new DataOptions { ReadLabels = false });
        Assert.Equal(["w1, \"w2\"", "w5"], back.Examples.Select(e => e.Text));
        Assert.Equal(["w3\nw4", "w6"], back.Examples.Select(e => e.TextPair));
    }

    [Fact]
    public void Device_cpu_predicts_as_the_default_and_an_unknown_or_unavailable_device_is_one_error_line()
    {
        var (exit, byDefault) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--text", "w2 w10 w11", "--format", "json");
        Assert.True(exit == 0, byDefault);
        var (cpuExit, onCpu) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--text", "w2 w10 w11", "--format", "json", "--device", "cpu");
        Assert.True(cpuExit == 0, onCpu);
        Assert.Equal(byDefault, onCpu);

        string data = cli.WriteCsv("device-eval.csv", TinyModels.ToyTexts(6, seed: 4));
        var (badExit, bad) = TrainCliHarness.Run("evaluate", "--model", cli.TrainedRun, "--data", data, "--device", "gpu");
        Assert.Equal(1, badExit);
        Assert.Contains("--device must be cpu, cuda or cuda:N, got 'gpu'", bad);
        if (TorchSharp.torch.cuda.is_available()) return; // the CUDA build on a GPU: cuda is a valid device there
        var (cudaExit, cuda) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--text", "w2", "--device", "cuda");
        Assert.Equal(1, cudaExit);
        Assert.Contains("--device cuda: CUDA is not available to libtorch", cuda);
    }

    [Fact]
    public void Predict_one_text_as_json_gives_the_label_and_probabilities()
    {
        var (exit, output) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--text", "w2 w10 w11", "--format", "json");

        Assert.True(exit == 0, output);
        var json = JsonNode.Parse(output)!;
        var probabilities = json["probabilities"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<double>());
        Assert.Equal(["no", "yes"], probabilities.Keys.Order());
        Assert.Equal(1.0, probabilities.Values.Sum(), 5);
        Assert.Equal(probabilities.MaxBy(p => p.Value).Key, json["label"]!.GetValue<string>());
    }

    [Fact]
    public void Predict_one_text_as_a_table()
    {
        var (exit, output) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--text", "w2 w10", "--text-pair", "w3");
        Assert.True(exit == 0, output);
        Assert.Contains("label:", output);
        Assert.Contains("probability", output);
    }

    [Fact]
    public void Predict_needs_either_data_with_output_or_text()
    {
        var (exit, output) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun);
        Assert.Equal(1, exit);
        Assert.Contains("--data", output);

        (exit, output) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--data", cli.EvalFile);
        Assert.Equal(1, exit);
        Assert.Contains("--output", output);
    }

    [Fact]
    public void A_missing_text_column_is_an_error_naming_the_file_and_the_columns()
    {
        string data = cli.Write("wrong-columns.csv", "body\nw1\n");
        var (exit, output) = TrainCliHarness.Run("predict", "--model", cli.TrainedRun, "--data", data, "--output", cli.PathOf("x.csv"));
        Assert.Equal(1, exit);
        Assert.Contains($"{data}:1:", output);
        Assert.Contains("'body'", output);
        Assert.False(File.Exists(cli.PathOf("x.csv")));
    }
}
