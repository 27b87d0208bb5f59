using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using SharpTune.Tests.Fixtures;
using Endpoint = global::Samples.OnnxEndpoint;

namespace SharpTune.Tests.Samples;

/// <summary>samples/OnnxEndpoint: a minimal ASP.NET endpoint serving an export through ONNX Runtime, on 127.0.0.1.</summary>
public sealed class OnnxEndpointTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("sharptune-endpoint-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public async Task The_endpoint_labels_texts_as_the_model_does_in_SharpTune()
    {
        string run = HfFixtures.Directory("bert"); // a sequence classifier saved by transformers: id2label neg, neu, pos
        string onnx = Path.Combine(folder, "model.onnx");
        string[] texts = ["the movie was great", "terrible, awful, bad", "it is a film", "a"];
        IReadOnlyList<Prediction> expected;
        using (var model = (TextClassifier)TaskModel.Load(run))
        {
            model.ExportOnnx(onnx);
            expected = model.Predict(texts);
        }

        await using WebApplication app = Endpoint.Program.Build(run, onnx, ["--urls", "http://127.0.0.1:0"]);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        Assert.Equal(["neg", "neu", "pos"], (await http.GetFromJsonAsync<string[]>("/labels"))!);
        var response = await http.PostAsJsonAsync("/classify", new { texts });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var rows = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsArray();
        Assert.Equal(texts.Length, rows.Count);
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(expected[i].Label, rows[i]!["label"]!.GetValue<string>());
            foreach (var (label, probability) in expected[i].Probabilities)
                Assert.Equal(probability, rows[i]!["probabilities"]![label]!.GetValue<float>(), 1e-4);
        }

        var bad = await http.PostAsJsonAsync("/classify", new { texts = Array.Empty<string>() });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("non-empty", await bad.Content.ReadAsStringAsync());
        await app.StopAsync();
    }

    [Fact]
    public void A_missing_model_or_run_is_a_clear_error()
    {
        string missing = Path.Combine(folder, "none.onnx");
        var error = Assert.Throws<SharpTuneException>(() => new Endpoint.OnnxClassifier(HfFixtures.Directory("bert"), missing, 128));
        Assert.Contains(missing, error.Message);
        File.WriteAllText(missing, "");
        error = Assert.Throws<SharpTuneException>(() => new Endpoint.OnnxClassifier(folder, missing, 128));
        Assert.Contains("config.json", error.Message);
    }
}
