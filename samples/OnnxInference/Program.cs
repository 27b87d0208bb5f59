// A fine-tuned SharpTune classifier in ONNX Runtime: exports RUN_DIR as float32 and as int8 ONNX models, scores a
// labelled file with each and with SharpTune itself, and prints accuracy, agreement and time.
//
//   dotnet run --project samples/OnnxInference -c Release -- RUN_DIR data/spam-sample/test.csv [--max-length 128]
//
// OnnxScorer below is all a .NET service needs at run time: the tokenizer from the run directory and an
// InferenceSession; the labels are config.json's id2label.
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SharpTune;
using SharpTune.Data;
using SharpTune.Export;
using SharpTune.Tokenization;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: OnnxInference RUN_DIR DATA.csv [--max-length N]");
    return 1;
}
string run = args[0], dataPath = args[1];
int maxLength = args.Length >= 4 && args[2] == "--max-length" ? int.Parse(args[3], CultureInfo.InvariantCulture) : 128;
try
{
    var data = TextDataset.Load(dataPath).Examples;
    using var classifier = TextClassifier.Load(run);
    string folder = Directory.CreateTempSubdirectory("sharptune-onnx-sample-").FullName;
    string fp32 = Path.Combine(folder, "model.onnx"), int8 = Path.Combine(folder, "model.int8.onnx");
    classifier.ExportOnnx(fp32);
    classifier.ExportOnnx(int8, new OnnxExportOptions(OnnxWeightFormat.Int8));

    var clock = Stopwatch.StartNew();
    string[] reference = classifier.Predict(data.Select(e => e.Text).ToList(), data.Select(e => e.TextPair).ToList()).Select(p => p.Label).ToArray();
    double referenceSeconds = clock.Elapsed.TotalSeconds;
    string[] gold = data.Select(e => e.Labels[0]).ToArray();
    Console.WriteLine($"{data.Count} examples from {dataPath}");
    Report("SharpTune (TorchSharp)", reference, gold, reference, referenceSeconds, null);
    foreach (var (name, path) in new[] { ("ONNX Runtime float32", fp32), ("ONNX Runtime int8", int8) })
    {
        using var scorer = new OnnxScorer(path, classifier.Tokenizer, classifier.Labels.Names, maxLength);
        clock.Restart();
        string[] labels = scorer.Predict(data.Select(e => e.Text).ToList(), data.Select(e => e.TextPair).ToList());
        Report(name, labels, gold, reference, clock.Elapsed.TotalSeconds, new FileInfo(path).Length);
    }
    Directory.Delete(folder, recursive: true);
    return 0;
}
catch (SharpTuneException e)
{
    Console.Error.WriteLine("error: " + e.Message);
    return 1;
}

static void Report(string name, string[] predicted, string[] gold, string[] reference, double seconds, long? bytes)
{
    double accuracy = predicted.Zip(gold).Count(p => p.First == p.Second) / (double)gold.Length;
    int agree = predicted.Zip(reference).Count(p => p.First == p.Second);
    string size = bytes is { } b ? $", {b / 1e6:0.0} MB" : "";
    Console.WriteLine($"{name,-24} accuracy {accuracy:0.0000}  same label as SharpTune {agree}/{gold.Length}  {seconds:0.00} s{size}");
}

/// <summary>Labels texts with an exported model: tokenise (SharpTune's tokenizer), run the session, argmax.</summary>
internal sealed class OnnxScorer(string modelPath, Tokenizer tokenizer, IReadOnlyList<string> labels, int maxLength) : IDisposable
{
    private readonly InferenceSession _session = new(modelPath, Options());

    // As many threads as SharpTune gives libtorch when SHARPTUNE_THREADS is set, so that the times compare.
    private static SessionOptions Options()
    {
        var options = new SessionOptions();
        if (int.TryParse(Environment.GetEnvironmentVariable("SHARPTUNE_THREADS"), out int threads)) options.IntraOpNumThreads = threads;
        return options;
    }

    public string[] Predict(IReadOnlyList<string> texts, IReadOnlyList<string?> pairs, int batchSize = 32)
    {
        var result = new List<string>(texts.Count);
        for (int start = 0; start < texts.Count; start += batchSize)
        {
            int count = Math.Min(batchSize, texts.Count - start);
            EncodedBatch batch = tokenizer.EncodeBatch(texts.Skip(start).Take(count).ToList(), pairs.Skip(start).Take(count).ToList(), maxLength);
            int[] shape = [batch.BatchSize, batch.SequenceLength];
            var inputs = new List<NamedOnnxValue>();
            foreach (string name in _session.InputMetadata.Keys) // input_ids, attention_mask and, for BERT, token_type_ids
            {
                long[] values = name switch { "input_ids" => batch.InputIds, "attention_mask" => batch.AttentionMask, _ => batch.TokenTypeIds };
                inputs.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(values, shape)));
            }
            using var outputs = _session.Run(inputs);
            float[] logits = outputs.Single(o => o.Name == "logits").AsTensor<float>().ToArray();
            for (int row = 0; row < count; row++)
            {
                var scores = logits.AsSpan(row * labels.Count, labels.Count);
                int best = 0;
                for (int i = 1; i < scores.Length; i++) if (scores[i] > scores[best]) best = i;
                result.Add(labels[best]);
            }
        }
        return result.ToArray();
    }

    public void Dispose() => _session.Dispose();
}
