// A fine-tuned SharpTune classifier behind a minimal ASP.NET endpoint, run by ONNX Runtime: no TorchSharp at serving
// time. The run directory gives the tokenizer and the labels (config.json's id2label); the model is its ONNX export.
//
//   sharptune export-onnx --model runs/spam --out runs/spam/model.onnx            # or --weights int8
//   dotnet run --project samples/OnnxEndpoint -c Release -- runs/spam runs/spam/model.onnx --urls http://127.0.0.1:5000
//   curl -s http://127.0.0.1:5000/classify -H 'content-type: application/json' -d '{"texts":["Win a free prize now"]}'
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SharpTune;
using SharpTune.Tokenization;

namespace Samples.OnnxEndpoint;

/// <summary>The request body: the texts to label (and, for pair tasks, one second text per text).</summary>
public sealed record ClassifyRequest(IReadOnlyList<string> Texts, IReadOnlyList<string?>? Pairs = null);

/// <summary>One text's label and the probability of every label.</summary>
public sealed record Classification(string Label, IReadOnlyDictionary<string, float> Probabilities);

public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: OnnxEndpoint RUN_DIR MODEL.onnx [--urls http://127.0.0.1:5000] [--max-length N]");
            return 1;
        }
        try
        {
            Build(args[0], args[1], args[2..]).Run();
            return 0;
        }
        catch (SharpTuneException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }

    /// <summary>The web application: POST /classify with <see cref="ClassifyRequest"/>, GET /labels.</summary>
    public static WebApplication Build(string runDirectory, string modelPath, string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        int maxLength = builder.Configuration.GetValue("max-length", 128);
        builder.Services.AddSingleton(new OnnxClassifier(runDirectory, modelPath, maxLength));
        var app = builder.Build();
        app.MapGet("/labels", (OnnxClassifier classifier) => classifier.Labels);
        app.MapPost("/classify", (ClassifyRequest request, OnnxClassifier classifier) =>
        {
            if (request.Texts is not { Count: > 0 } texts || texts.Any(string.IsNullOrEmpty))
                return Results.BadRequest(new { error = "texts must be a non-empty list of non-empty strings" });
            if (request.Pairs is { } pairs && pairs.Count != texts.Count)
                return Results.BadRequest(new { error = $"{pairs.Count} pairs for {texts.Count} texts; give one per text" });
            return Results.Ok(classifier.Classify(texts, request.Pairs));
        });
        return app;
    }
}

/// <summary>Tokenizes with SharpTune's tokenizer (the ids of HF's tokenizers), runs the export, and turns logits into probabilities.</summary>
public sealed class OnnxClassifier : IDisposable
{
    private readonly InferenceSession session;
    private readonly Tokenizer tokenizer;
    private readonly int maxLength;
    private readonly bool multiLabel;
    private readonly Lock gate = new(); // one batch at a time: ORT already uses every core for one

    public OnnxClassifier(string runDirectory, string modelPath, int maxLength)
    {
        if (!File.Exists(modelPath)) throw new SharpTuneException($"{modelPath}: no such ONNX model (sharptune export-onnx writes one).");
        string configPath = Path.Combine(runDirectory, "config.json");
        if (!File.Exists(configPath)) throw new SharpTuneException($"{configPath}: not found; give the run directory the model was exported from.");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        var id2label = config["id2label"]?.AsObject() ?? throw new SharpTuneException($"{configPath}: no id2label.");
        Labels = Enumerable.Range(0, id2label.Count).Select(i => id2label[i.ToString(System.Globalization.CultureInfo.InvariantCulture)]?.GetValue<string>()
            ?? throw new SharpTuneException($"{configPath}: id2label has no label {i}.")).ToArray();
        multiLabel = config["problem_type"]?.GetValue<string>() == "multi_label_classification";
        tokenizer = Tokenizer.FromDirectory(runDirectory);
        this.maxLength = maxLength;
        session = new InferenceSession(modelPath);
    }

    /// <summary>The labels, in the model's order.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>Each text's label and probabilities (softmax; sigmoid per label for a multi-label model).</summary>
    public IReadOnlyList<Classification> Classify(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs = null)
    {
        EncodedBatch batch = tokenizer.EncodeBatch(texts, pairs, maxLength);
        int[] shape = [batch.BatchSize, batch.SequenceLength];
        var inputs = session.InputMetadata.Keys.Select(name => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(name switch
        {
            "input_ids" => batch.InputIds,
            "attention_mask" => batch.AttentionMask,
            _ => batch.TokenTypeIds,
        }, shape))).ToList();
        float[] logits;
        lock (gate)
        {
            using var outputs = session.Run(inputs);
            logits = outputs.Single(o => o.Name == "logits").AsTensor<float>().ToArray();
        }
        var result = new List<Classification>(texts.Count);
        for (int row = 0; row < texts.Count; row++)
        {
            var scores = logits.AsSpan(row * Labels.Count, Labels.Count);
            float[] p = new float[scores.Length];
            if (multiLabel) for (int i = 0; i < p.Length; i++) p[i] = 1 / (1 + MathF.Exp(-scores[i]));
            else
            {
                float max = float.NegativeInfinity, sum = 0;
                foreach (float s in scores) max = Math.Max(max, s);
                for (int i = 0; i < p.Length; i++) sum += p[i] = MathF.Exp(scores[i] - max);
                for (int i = 0; i < p.Length; i++) p[i] /= sum;
            }
            int best = 0;
            for (int i = 1; i < p.Length; i++) if (p[i] > p[best]) best = i;
            result.Add(new Classification(Labels[best], Labels.Select((l, i) => (l, i)).ToDictionary(x => x.l, x => p[x.i])));
        }
        return result;
    }

    public void Dispose() => session.Dispose();
}
