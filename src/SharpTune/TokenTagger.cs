using System.Globalization;
using SharpTune.Checkpoints;
using SharpTune.Data;
using SharpTune.Heads;
using SharpTune.Models;
using SharpTune.Strategies;
using SharpTune.Tokenization;
using SharpTune.Training;
using TorchSharp;

namespace SharpTune;

/// <summary>One tagged word: its tag, the tag's probability, and where it is in the text (character offsets; 0 when tagged from a word list).</summary>
public sealed record TaggedWord(string Word, string Tag, float Probability, int Start, int End);

/// <summary>An entity: its type, its words [FirstWord, LastWord] and its characters [Start, End) in the text.</summary>
public sealed record EntitySpan(string Type, string Text, int FirstWord, int LastWord, int Start, int End);

/// <summary>A text tagged word by word, with the entities its tags spell (none when the tags have no B-/I- scheme, e.g. POS tags).</summary>
public sealed record TaggedText(string Text, IReadOnlyList<TaggedWord> Words, IReadOnlyList<EntitySpan> Entities);

/// <summary>
/// Token classification (NER, POS, slot filling): a pretrained encoder with a per-token head that tags every word.
/// Words are tokenized one by one (HF's <c>is_split_into_words</c>); the first sub-token of each word carries its tag;
/// sentences longer than <see cref="TaskModel.MaxLength"/> are split into windows that share <see cref="Stride"/> tokens of
/// context, and predictions are stitched back so every word is tagged (<see cref="TokenWindows"/>).
/// <code>
/// using var tagger = TokenTagger.Create(null, "token", TokenDataset.TagSet(train));
/// tagger.Train(train, dev, Strategy.Parse("full"), new TrainingOptions());
/// TaggedText tagged = tagger.PredictText("Pierre Vinken will join the board.");
/// </code>
/// </summary>
public sealed class TokenTagger : TaskModel
{
    internal TokenTagger(SequenceClassifier model, Tokenizer tokenizer, LabelSet tags, int maxLength, string? strategy, int? stride)
        : base(model, tokenizer, tags, TaskType.Token, maxLength, strategy)
    {
        int room = maxLength - tokenizer.Template.Added(false);
        Stride = stride ?? Math.Max(0, Math.Min(maxLength / 4, room - 1));
        if (Stride < 0 || Stride >= room)
        {
            model.Dispose();
            throw new SharpTuneException($"--stride must be in [0, {room}) for --max-length {maxLength}, got {Stride}.");
        }
    }

    /// <summary>Tokens of context that consecutive windows of a long sentence share (default: a quarter of <see cref="TaskModel.MaxLength"/>).</summary>
    public int Stride { get; }

    /// <summary>
    /// Loads a pretrained encoder (null: the packaged all-MiniLM-L6-v2) and puts a new per-token head on it: <c>token</c>
    /// (dropout → linear, HF's XForTokenClassification head), <c>hf</c> (the architecture's own), or a registered type.
    /// </summary>
    public static TokenTagger Create(string? modelDirectory, string head, LabelSet tags, int maxLength = 128, int seed = 42, int? stride = null) =>
        CreateWith(modelDirectory, (encoder, outputs) => HeadRegistry.Create(head, encoder, outputs, TaskType.Token), tags, maxLength, seed, stride);

    /// <summary>As the other overload, with a custom per-token head built from (hidden size, tags).</summary>
    public static TokenTagger Create(string? modelDirectory, Func<int, int, Head> head, LabelSet tags, int maxLength = 128, int seed = 42, int? stride = null) =>
        CreateWith(modelDirectory, (encoder, outputs) => head(encoder.Config.HiddenSize, outputs), tags, maxLength, seed, stride);

    private static TokenTagger CreateWith(string? modelDirectory, Func<Encoder, int, Head> head, LabelSet tags, int maxLength, int seed, int? stride)
    {
        var (model, tokenizer, baseModel) = Build(modelDirectory, head, tags, TaskType.Token, maxLength, seed);
        return new TokenTagger(model, tokenizer, tags, maxLength, null, stride) { BaseModel = baseModel };
    }

    /// <summary>Loads a run directory saved by <see cref="TaskModel.Save"/> or a Python-saved XForTokenClassification checkpoint.</summary>
    public static new TokenTagger Load(string directory, int? stride = null)
    {
        TaskModel loaded = TaskModel.Load(directory, stride);
        if (loaded is TokenTagger tagger) return tagger;
        loaded.Dispose();
        throw new SharpTuneException($"{directory}: this model classifies whole texts (task {loaded.Task.Name}); load it with TextClassifier.Load.");
    }

    /// <summary>
    /// Loads a PEFT LoRA adapter of a token-classification run (task_type TOKEN_CLS) onto its base model
    /// <paramref name="baseModel"/> (null: the packaged MiniLM); see <see cref="TaskModel.LoadAdapter"/>.
    /// </summary>
    public static new TokenTagger LoadAdapter(string? baseModel, string adapterDirectory, int? stride = null)
    {
        TaskModel loaded = TaskModel.LoadAdapter(baseModel, adapterDirectory, stride);
        if (loaded is TokenTagger tagger) return tagger;
        loaded.Dispose();
        throw new SharpTuneException($"{adapterDirectory}: this adapter classifies whole texts (task {loaded.Task.Name}); load it with TextClassifier.LoadAdapter.");
    }

    /// <summary>
    /// Splits each sentence into windows and aligns its tags (when it has them) to the first sub-token of each word.
    /// A tag the model does not know is an error naming the file and line.
    /// </summary>
    public TaskDataset Encode(IReadOnlyList<TaggedSentence> sentences, string source = "data") => EncodeWindows(sentences, source).Data;

    private (TaskDataset Data, IReadOnlyList<TokenWindow>[] Windows) EncodeWindows(IReadOnlyList<TaggedSentence> sentences, string source)
    {
        bool labelled = sentences.Count > 0 && sentences.All(s => s.Tags.Count > 0);
        if (labelled) TokenDataset.CheckTags(sentences, Labels, source);
        var perSentence = new IReadOnlyList<TokenWindow>[sentences.Count];
        Parallel.For(0, sentences.Count, i =>
        {
            int[]? tags = labelled ? sentences[i].Tags.Select(Labels.Id).ToArray() : null;
            perSentence[i] = TokenWindows.Split(Tokenizer, sentences[i].Tokens, tags, MaxLength, Stride);
        });
        var windows = perSentence.SelectMany((w, i) => w.Select(window => (Window: window, Sentence: i))).ToList();
        var ids = windows.Select(w => w.Window.Encoding.InputIds).ToList();
        var types = windows.Select(w => w.Window.Encoding.TokenTypeIds).ToList();
        var sentenceOf = windows.Select(w => w.Sentence).ToList();
        TaskDataset data = labelled
            ? new TaskDataset(Task, Labels.Count, ids, types, labelNames: Labels.Names, tokenLabels: windows.Select(w => w.Window.Labels).ToList(), sentences: sentenceOf)
            : TaskDataset.Unlabelled(Task, Labels.Count, ids, types, Labels.Names, sentenceOf);
        return (data, perSentence);
    }

    /// <summary>Trains under <paramref name="strategy"/>; see <see cref="Trainer"/>.</summary>
    public TrainingResult Train(IReadOnlyList<TaggedSentence> train, IReadOnlyList<TaggedSentence>? eval, Strategy strategy, TrainingOptions options,
        IProgress<TrainingEvent>? progress = null, CancellationToken cancellation = default) =>
        Fit(Encode(train, "train"), eval is null ? null : Encode(eval, "eval"), strategy, options, progress, cancellation);

    /// <summary>Loss, token accuracy, per-tag scores and (for B-/I- tags) entity scores on tagged sentences.</summary>
    public EvaluationOutput Evaluate(IReadOnlyList<TaggedSentence> sentences, int batchSize = 32, string device = "cpu", Precision precision = Precision.Fp32) =>
        Evaluate(Encode(sentences, "eval"), batchSize, device, precision);

    /// <summary>Tags every word of every sentence (long sentences through windows; every word gets a tag).</summary>
    public IReadOnlyList<IReadOnlyList<TaggedWord>> Predict(IReadOnlyList<IReadOnlyList<string>> sentences, int batchSize = 32, string device = "cpu",
        Precision precision = Precision.Fp32)
    {
        var (data, perSentence) = EncodeWindows(sentences.Select(words => new TaggedSentence(words, [], 0)).ToList(), "input");
        float[][] probabilities = Evaluator.Predict(Model, data, batchSize, Native.Devices.Parse(device), precision, OnnxRuntime);

        var result = new List<IReadOnlyList<TaggedWord>>(sentences.Count);
        int example = 0;
        for (int s = 0; s < sentences.Count; s++)
        {
            IReadOnlyList<TokenWindow> windows = perSentence[s];
            var scores = windows.Select((w, k) => Rows(probabilities[example + k], Labels.Count)).ToList();
            example += windows.Count;
            var (tags, probability) = TokenWindows.Stitch(windows, scores, sentences[s].Count);
            var words = new TaggedWord[tags.Length];
            for (int w = 0; w < tags.Length; w++) words[w] = new TaggedWord(sentences[s][w], Labels.Names[tags[w]], probability[w], 0, 0);
            result.Add(words);
        }
        return result;
    }

    /// <summary>
    /// Tags a raw text: it is split into words (runs of letters and digits; each other non-space character is a word
    /// of its own, as BERT's basic tokenizer splits punctuation), each word is tagged, and the entities are spelled
    /// out with their character offsets.
    /// </summary>
    public TaggedText PredictText(string text, string device = "cpu", Precision precision = Precision.Fp32)
    {
        var spans = SplitWords(text);
        if (spans.Count == 0) return new TaggedText(text, [], []);
        var words = spans.Select(s => text[s.Start..s.End]).ToList();
        IReadOnlyList<TaggedWord> tagged = Predict([words], device: device, precision: precision)[0];
        var located = tagged.Select((w, i) => w with { Start = spans[i].Start, End = spans[i].End }).ToList();
        var entities = EntityMetrics.DetectScheme(Labels.Names) is null ? [] : EntityMetrics.Entities(located.Select(w => w.Tag).ToList())
            .Select(e => new EntitySpan(e.Type, text[located[e.Start].Start..located[e.End].End], e.Start, e.End, located[e.Start].Start, located[e.End].End))
            .ToList();
        return new TaggedText(text, located, entities);
    }

    /// <summary>The words of a text with their character offsets [Start, End): letter/digit runs and single other non-space characters.</summary>
    public static IReadOnlyList<(int Start, int End)> SplitWords(string text)
    {
        var spans = new List<(int, int)>();
        int i = 0;
        while (i < text.Length)
        {
            int width = char.IsSurrogatePair(text, i) ? 2 : 1;
            var category = CharUnicodeInfo.GetUnicodeCategory(text, i);
            if (char.IsWhiteSpace(text, i)) { i += width; continue; }
            if (!IsWordCharacter(category)) { spans.Add((i, i + width)); i += width; continue; }
            int start = i;
            while (i < text.Length && !char.IsWhiteSpace(text, i) && IsWordCharacter(CharUnicodeInfo.GetUnicodeCategory(text, i)))
                i += char.IsSurrogatePair(text, i) ? 2 : 1;
            spans.Add((start, i));
        }
        return spans;
    }

    private static bool IsWordCharacter(UnicodeCategory category) => category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
        or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark
        or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    // [tokens × labels] flattened → one row per token.
    private static float[][] Rows(float[] flat, int labels) => Enumerable.Range(0, flat.Length / labels).Select(t => flat.AsSpan(t * labels, labels).ToArray()).ToArray();

}
