using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Training;
using TorchSharp;

namespace SharpTune.Tests;

/// <summary>A tiny random BERT config and a learnable toy task for unit tests, as HF's own model testers use.</summary>
internal static class TinyModels
{
    public static BertConfig Config(double dropout = 0.1) => new()
    {
        VocabSize = 99, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 37,
        MaxPositionEmbeddings = 64, TypeVocabSize = 2, HiddenDropoutProb = dropout, AttentionProbsDropoutProb = dropout,
    };

    /// <summary>A tiny classifier with the named head (cls, pooled, mean), seeded.</summary>
    public static SequenceClassifier Classifier(string head = "cls", int labels = 2, double dropout = 0.1, int seed = 0)
    {
        torch.manual_seed(seed);
        var config = Config(dropout);
        return new SequenceClassifier(new BertModel(config), HeadRegistry.Create(head, config.HiddenSize, labels, new() { ["dropout"] = dropout }));
    }

    /// <summary>Words of the tiny vocabulary (ids 5…): w0 … w93.</summary>
    public static string Word(int i) => "w" + i;

    /// <summary>Writes a tiny random HF model directory (config.json, model.safetensors, vocab.txt) and returns its path.</summary>
    public static string Directory(string path, int seed = 0)
    {
        System.IO.Directory.CreateDirectory(path);
        torch.manual_seed(seed);
        var config = Config();
        using var model = new BertModel(config);
        var tensors = SharpTune.Checkpoints.StateDict.ToDictionary(model);
        SharpTune.Checkpoints.HfModelDirectory.Save(path, config, tensors);
        string[] vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", .. Enumerable.Range(0, config.VocabSize - 5).Select(Word)];
        File.WriteAllLines(Path.Combine(path, "vocab.txt"), vocab);
        return path;
    }

    /// <summary>Toy texts over the tiny vocabulary: label "yes" when w2 occurs.</summary>
    public static List<SharpTune.Data.TextExample> ToyTexts(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            var words = Enumerable.Range(0, random.Next(2, 12)).Select(_ => Word(random.Next(3, 90))).ToList();
            bool positive = i % 2 == 0;
            if (positive) words.Insert(random.Next(words.Count), Word(2));
            return SharpTune.Data.TextExample.Single(string.Join(' ', words), positive ? "yes" : "no");
        }).ToList();
    }

    /// <summary>
    /// A learnable toy task: random token sequences of varied length; label 1 when token 7 occurs in it.
    /// <paramref name="flipLabels"/> inverts the rule (an eval set that training makes worse).
    /// </summary>
    public static TaskDataset ToyTask(int count, int seed, bool flipLabels = false)
    {
        var random = new Random(seed);
        var ids = new List<long[]>();
        var types = new List<long[]>();
        var labels = new List<long>();
        for (int i = 0; i < count; i++)
        {
            int length = random.Next(4, 20);
            long[] sequence = new long[length];
            sequence[0] = 2;
            for (int t = 1; t < length - 1; t++) sequence[t] = random.Next(8, 99);
            sequence[^1] = 3;
            bool positive = i % 2 == 0;
            if (positive) sequence[random.Next(1, length - 1)] = 7;
            ids.Add(sequence);
            types.Add(new long[length]);
            labels.Add(positive ^ flipLabels ? 1 : 0);
        }
        return new TaskDataset(TaskType.SingleLabel, 2, ids, types, labels, labelNames: ["no", "yes"]);
    }
}
