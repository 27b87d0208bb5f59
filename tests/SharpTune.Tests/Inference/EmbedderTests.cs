using SharpTune.Inference;
using SharpTune.Models;
using SharpTune.Tests.Parity;

namespace SharpTune.Tests.Inference;

[Collection(PackagedMiniLMCollection.Name)]
public class EmbedderTests(PackagedMiniLMFixture fixture)
{
    private Embedder Embedder(Pooling pooling = Pooling.Mean, bool normalize = false, int batchSize = 32, int? maxLength = null) =>
        new(fixture.Encoder, new EmbedderOptions { Pooling = pooling, Normalize = normalize, BatchSize = batchSize, MaxLength = maxLength });

    [Fact]
    public void Mean_pooled_normalized_embeddings_rank_the_paraphrase_above_the_unrelated_sentence()
    {
        var vectors = Embedder(Pooling.Mean, normalize: true)
            .Embed(["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."])
            .Select(e => e.Vector).ToArray();
        double bread = SharpTune.Inference.Embedder.Cosine(vectors[0], vectors[1]);
        double horse = SharpTune.Inference.Embedder.Cosine(vectors[0], vectors[2]);
        Assert.True(bread > horse + 0.1, $"cos(food, bread) {bread:F3} vs cos(food, horse) {horse:F3}");
    }

    [Fact]
    public void Length_sorted_batches_give_the_same_vectors_in_input_order_as_one_text_at_a_time()
    {
        string[] texts = ["Short.", "A much longer sentence that needs a lot more padding for the others.", "", "Middle length text here.", "café"];
        string?[] pairs = [null, null, "pair b", null, "naïve"];
        var batched = Embedder(batchSize: 2).Embed(texts, pairs);
        var single = Embedder(batchSize: 1);
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(fixture.Encoder.Tokenizer.Encode(texts[i], pairs[i]).InputIds, batched[i].InputIds);
            float[] alone = single.Embed(texts[i], pairs[i]).Vector;
            double diff = alone.Zip(batched[i].Vector, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(diff < 1e-5, $"text {i}: batched vs alone differs by {diff:E2}");
        }
    }

    [Fact]
    public void None_gives_one_row_per_token_whose_first_is_cls_and_whose_mean_is_mean()
    {
        const string text = "The capital of France is Paris.";
        var rows = Embedder(Pooling.None).Embed(text);
        Assert.Equal(rows.InputIds.Length, rows.Rows.Length);
        Assert.All(rows.Rows, r => Assert.Equal(384, r.Length));
        Assert.Throws<InvalidOperationException>(() => rows.Vector);

        float[] cls = Embedder(Pooling.Cls).Embed(text).Vector;
        Assert.Equal(rows.Rows[0], cls);
        float[] mean = Embedder(Pooling.Mean).Embed(text).Vector;
        for (int h = 0; h < 384; h++)
            Assert.Equal(rows.Rows.Average(r => (double)r[h]), mean[h], 1e-5);
    }

    [Fact]
    public void Normalize_scales_vectors_and_token_rows_to_unit_length()
    {
        static double Norm(float[] v) => Math.Sqrt(v.Sum(x => (double)x * x));
        Assert.Equal(1.0, Norm(Embedder(Pooling.Mean, normalize: true).Embed("unit length").Vector), 1e-5);
        Assert.True(Math.Abs(Norm(Embedder(Pooling.Mean).Embed("unit length").Vector) - 1) > 0.01);
        Assert.All(Embedder(Pooling.None, normalize: true).Embed("every token row").Rows, r => Assert.Equal(1.0, Norm(r), 1e-5));
    }

    [Fact]
    public void Max_length_truncates_and_out_of_range_values_name_the_field()
    {
        var result = Embedder(maxLength: 5).Embed("one two three four five six seven");
        Assert.Equal(5, result.InputIds.Length);
        var e = Assert.Throws<SharpTuneException>(() => Embedder(maxLength: 600));
        Assert.Contains("max_length", e.Message);
        Assert.Contains("512", e.Message);
    }

    [Fact]
    public void Embedding_leaves_a_training_model_in_training_mode_without_gradients()
    {
        var model = fixture.Encoder.Model;
        model.train();
        try
        {
            var first = Embedder().Embed("dropout must be off while embedding").Vector;
            var second = Embedder().Embed("dropout must be off while embedding").Vector;
            Assert.Equal(first, second); // eval mode during Embed: no dropout noise
            Assert.True(model.training);
            Assert.All(model.parameters(), p => Assert.Null(p.grad));
        }
        finally { model.eval(); }
    }

    [Fact]
    public void Loading_a_missing_model_directory_names_it()
    {
        string missing = Path.Combine(Path.GetTempPath(), "sharptune-no-such-model-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<SharpTuneException>(() => PretrainedEncoder.Load(missing));
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void Loaded_encoder_is_in_eval_mode_with_the_directory_config()
    {
        Assert.False(fixture.Encoder.Model.training);
        Assert.Equal(fixture.ModelDir, fixture.Encoder.Directory.Path);
        Assert.Equal((6, 384), (fixture.Encoder.Model.Config.NumHiddenLayers, fixture.Encoder.Model.Config.HiddenSize));
    }
}
