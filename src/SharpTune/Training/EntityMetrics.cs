namespace SharpTune.Training;

/// <summary>
/// Tagging schemes of token classification, named as seqeval's <c>seqeval.scheme</c> classes. The prefix
/// before <c>-</c> marks the token's place in an entity: <c>B</c> begin, <c>I</c> inside, <c>E</c>/<c>L</c>
/// end (last), <c>S</c>/<c>U</c> single (unit), <c>O</c> outside.
/// </summary>
public enum TagScheme
{
    /// <summary>I- everywhere; B- only where an entity directly follows one of the same type (original CoNLL-2003).</summary>
    IOB1,
    /// <summary>B- on every entity's first token, I- on the rest (BIO; CoNLL-2003 as distributed by Hugging Face).</summary>
    IOB2,
    /// <summary>I- everywhere; E- only where an entity directly precedes one of the same type.</summary>
    IOE1,
    /// <summary>E- on every entity's last token, I- on the rest.</summary>
    IOE2,
    /// <summary>B- first, I- inside, E- last, S- for a one-token entity (also called BIOES).</summary>
    IOBES,
    /// <summary>B- first, I- inside, L- last, U- for a one-token entity.</summary>
    BILOU,
}

/// <summary>Entity-level scores of one entity type, as a row of seqeval's <c>classification_report</c>.</summary>
/// <param name="Type">The entity type, e.g. <c>PER</c> (the tag without its prefix; <c>_</c> for a bare prefix such as <c>B</c>).</param>
/// <param name="Precision">Predicted entities of the type that match a gold entity exactly, over all predicted ones; 0 when none is predicted.</param>
/// <param name="Recall">Gold entities of the type that are predicted exactly, over all gold ones; 0 when there is none.</param>
/// <param name="F1">Harmonic mean of precision and recall; 0 when both are 0.</param>
/// <param name="Support">Number of gold entities of the type.</param>
public sealed record EntityScore(string Type, double Precision, double Recall, double F1, int Support);

/// <summary>
/// Entity-level metrics of a tagged corpus, as seqeval's <c>classification_report</c> gives them, plus token accuracy.
/// An entity counts as correct only when its type, start and end all match a gold entity.
/// </summary>
/// <param name="PerType">One score per entity type found in the gold or the predicted tags, ordered by type name (ordinal, as Python's <c>sorted</c>).</param>
/// <param name="MicroPrecision">Correct entities over all predicted entities (seqeval's <c>micro avg</c>).</param>
/// <param name="MicroRecall">Correct entities over all gold entities.</param>
/// <param name="MicroF1">Harmonic mean of <paramref name="MicroPrecision"/> and <paramref name="MicroRecall"/>; seqeval's default <c>f1_score</c>.</param>
/// <param name="MacroPrecision">Unweighted mean of the per-type precisions (<c>macro avg</c>).</param>
/// <param name="MacroRecall">Unweighted mean of the per-type recalls.</param>
/// <param name="MacroF1">Unweighted mean of the per-type F1 scores (not the F1 of the macro precision and recall).</param>
/// <param name="Support">Number of gold entities.</param>
/// <param name="TokenAccuracy">Fraction of tokens whose predicted tag equals the gold tag (seqeval's <c>accuracy_score</c>).</param>
public sealed record EntityReport(
    IReadOnlyList<EntityScore> PerType,
    double MicroPrecision,
    double MicroRecall,
    double MicroF1,
    double MacroPrecision,
    double MacroRecall,
    double MacroF1,
    int Support,
    double TokenAccuracy);

/// <summary>
/// Entity-level metrics for token classification, computed exactly as Python's seqeval does, in its two modes:
/// <list type="bullet">
/// <item>default (conlleval-compatible, <c>seqeval.metrics.f1_score(y_true, y_pred)</c>): chunks from
/// <c>get_entities</c>, which reads tags leniently — an I- without a preceding B- still starts an entity;</item>
/// <item>strict (<c>mode='strict', scheme=…</c>): entities from <c>seqeval.scheme.Tokens</c> for one scheme,
/// where a sequence the scheme does not allow (an I- without a B- in IOB2) is no entity at all.</item>
/// </list>
/// Undefined ratios are 0, as seqeval's default <c>zero_division='warn'</c> returns (without the warning).
/// </summary>
public static class EntityMetrics
{
    /// <summary>
    /// The entities of one tag sequence in seqeval's default mode (<c>get_entities</c>): each a type and the
    /// indices of its first and last token (<paramref name="tags"/> positions, <c>End</c> inclusive, as seqeval).
    /// </summary>
    /// <remarks>
    /// Prefixes are read leniently, as conlleval does: the first character is the prefix and the text after the
    /// first <c>-</c> is the type. An I- or E- after O starts an entity; a change of type ends one and starts the
    /// next; B- and S- always start one; O, E- and S- end one.
    /// </remarks>
    /// <exception cref="SharpTuneException">A tag is empty.</exception>
    public static IReadOnlyList<(string Type, int Start, int End)> Entities(IReadOnlyList<string> tags)
    {
        ArgumentNullException.ThrowIfNull(tags);
        for (int i = 0; i < tags.Count; i++) CheckNotEmpty(tags[i], sentence: null, i);
        return GetEntities(tags);
    }

    /// <summary>
    /// The entities of one tag sequence in seqeval's strict mode (<c>Tokens(tags, scheme).entities</c>): only
    /// sequences the scheme allows — a start, tokens inside it, and a proper end — make an entity.
    /// </summary>
    /// <remarks>
    /// <c>End</c> is inclusive here as in <see cref="Entities"/>; seqeval's <c>Entity.end</c> is exclusive (one more).
    /// </remarks>
    /// <exception cref="SharpTuneException">A tag's prefix is not one of the scheme's (e.g. <c>S-LOC</c> in IOB2, or <c>NOUN</c>).</exception>
    public static IReadOnlyList<(string Type, int Start, int End)> StrictEntities(IReadOnlyList<string> tags, TagScheme scheme)
    {
        ArgumentNullException.ThrowIfNull(tags);
        return StrictEntities(tags, scheme, sentence: null);
    }

    /// <summary>
    /// Entity-level precision, recall and F1 per type with micro and macro averages, and token accuracy, of
    /// predicted tag sequences against gold ones (one list of tags per sentence).
    /// </summary>
    /// <param name="gold">Gold tags, one list per sentence.</param>
    /// <param name="predicted">Predicted tags, one list per sentence, each as long as its gold sentence.</param>
    /// <param name="strict">False for seqeval's default (conlleval) mode; true for <c>mode='strict'</c>.</param>
    /// <param name="scheme">
    /// The scheme of strict mode; null detects it from the gold tags (<see cref="DetectScheme"/>), as seqeval's
    /// <c>classification_report</c> does. Ignored in default mode, as by seqeval.
    /// </param>
    /// <remarks>
    /// No entity spans two sentences: default mode appends an O to every sentence before reading chunks, as
    /// seqeval flattens nested lists, and strict mode reads each sentence on its own. When no entity occurs in
    /// either gold or predictions every score is 0 (seqeval's macro average is NaN there).
    /// </remarks>
    /// <exception cref="SharpTuneException">
    /// The sentence counts or a sentence's lengths differ; a tag is empty; in strict mode, a tag does not belong
    /// to the scheme, or no scheme is given and none can be detected.
    /// </exception>
    public static EntityReport Compute(
        IReadOnlyList<IReadOnlyList<string>> gold,
        IReadOnlyList<IReadOnlyList<string>> predicted,
        bool strict = false,
        TagScheme? scheme = null)
    {
        CheckShapes(gold, predicted);

        Dictionary<string, HashSet<(int Sentence, int Start, int End)>> goldEntities, predictedEntities;
        if (strict)
        {
            TagScheme used = scheme ?? DetectScheme(gold.SelectMany(s => s)) ?? throw new SharpTuneException(
                $"Cannot detect the tag scheme of the gold tags (prefixes found: {DescribePrefixes(gold)}); pass the scheme for strict mode.");
            goldEntities = StrictEntitiesByType(gold, used, "gold");
            predictedEntities = StrictEntitiesByType(predicted, used, "predicted");
        }
        else
        {
            goldEntities = DefaultEntitiesByType(gold, "gold");
            predictedEntities = DefaultEntitiesByType(predicted, "predicted");
        }

        string[] types = [.. goldEntities.Keys.Union(predictedEntities.Keys).Order(StringComparer.Ordinal)];
        var perType = new EntityScore[types.Length];
        int correctTotal = 0, predictedTotal = 0, goldTotal = 0;
        for (int t = 0; t < types.Length; t++)
        {
            HashSet<(int, int, int)> g = goldEntities.GetValueOrDefault(types[t]) ?? [];
            HashSet<(int, int, int)> p = predictedEntities.GetValueOrDefault(types[t]) ?? [];
            int correct = g.Count(p.Contains);
            perType[t] = Score(types[t], correct, p.Count, g.Count);
            correctTotal += correct;
            predictedTotal += p.Count;
            goldTotal += g.Count;
        }

        EntityScore micro = Score("micro", correctTotal, predictedTotal, goldTotal);
        return new EntityReport(
            perType,
            micro.Precision,
            micro.Recall,
            micro.F1,
            Mean(perType, s => s.Precision),
            Mean(perType, s => s.Recall),
            Mean(perType, s => s.F1),
            goldTotal,
            TokenAccuracy(gold, predicted));
    }

    /// <summary>
    /// The tagging scheme of a set of tags from the prefixes that occur (O aside): B/I → IOB2; I/E → IOE2;
    /// B/I/E/S with an E- or S- → IOBES; B/I/L/U with an L- or U- → BILOU. Null when a tag has no
    /// scheme prefix (POS tags such as <c>NOUN</c>, where only token accuracy is meaningful), when only O occurs,
    /// or when the prefixes fit no scheme (I- alone, or E- with L-).
    /// </summary>
    /// <remarks>
    /// Agrees with seqeval's <c>auto_detect</c> wherever that picks a scheme (it too never picks IOB1 or IOE1);
    /// it also picks IOBES or BILOU for the prefix sets seqeval lists nowhere, such as only S- and O.
    /// A scheme prefix is a single letter, alone or followed by <c>-</c>.
    /// </remarks>
    public static TagScheme? DetectScheme(IEnumerable<string> tags)
    {
        ArgumentNullException.ThrowIfNull(tags);
        Prefix found = 0;
        foreach (string tag in tags)
        {
            if (ReadPrefix(tag) is not Prefix prefix) return null;
            found |= prefix;
        }

        found &= ~Prefix.O;
        if (found == 0) return null;
        if (Within(found, Prefix.B | Prefix.I) && found.HasFlag(Prefix.B)) return TagScheme.IOB2;
        if (Within(found, Prefix.I | Prefix.E) && found.HasFlag(Prefix.E)) return TagScheme.IOE2;
        if (Within(found, Prefix.B | Prefix.I | Prefix.E | Prefix.S)
            && (found & (Prefix.E | Prefix.S)) != 0 && (found & (Prefix.B | Prefix.S)) != 0) return TagScheme.IOBES;
        if (Within(found, Prefix.B | Prefix.I | Prefix.L | Prefix.U)
            && (found & (Prefix.L | Prefix.U)) != 0 && (found & (Prefix.B | Prefix.U)) != 0) return TagScheme.BILOU;
        return null;

        static bool Within(Prefix set, Prefix allowed) => (set & ~allowed) == 0;
    }

    /// <summary>
    /// Fraction of tokens whose predicted tag equals the gold tag, over all sentences (seqeval's
    /// <c>accuracy_score</c>); 0 when there are no tokens.
    /// </summary>
    /// <exception cref="SharpTuneException">The sentence counts or a sentence's lengths differ.</exception>
    public static double TokenAccuracy(IReadOnlyList<IReadOnlyList<string>> gold, IReadOnlyList<IReadOnlyList<string>> predicted)
    {
        CheckShapes(gold, predicted);
        int correct = 0, total = 0;
        for (int s = 0; s < gold.Count; s++)
            for (int i = 0; i < gold[s].Count; i++)
            {
                total++;
                if (string.Equals(gold[s][i], predicted[s][i], StringComparison.Ordinal)) correct++;
            }
        return total == 0 ? 0 : (double)correct / total;
    }

    /// <summary>Token-level tag confusion counts: <c>[gold index][predicted index]</c> over <paramref name="labels"/>.</summary>
    /// <param name="gold">Gold tags, one list per sentence.</param>
    /// <param name="predicted">Predicted tags, one list per sentence.</param>
    /// <param name="labels">Every tag that may occur, in the order of the rows and columns (e.g. the model's label names).</param>
    /// <exception cref="SharpTuneException">
    /// The sentence counts or a sentence's lengths differ, a label is listed twice, or a tag is not in <paramref name="labels"/>.
    /// </exception>
    public static int[][] ConfusionMatrix(
        IReadOnlyList<IReadOnlyList<string>> gold, IReadOnlyList<IReadOnlyList<string>> predicted, IReadOnlyList<string> labels)
    {
        CheckShapes(gold, predicted);
        ArgumentNullException.ThrowIfNull(labels);
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int k = 0; k < labels.Count; k++)
            if (!index.TryAdd(labels[k], k))
                throw new SharpTuneException($"Label '{labels[k]}' is listed twice (positions {index[labels[k]]} and {k}).");

        int[][] counts = [.. labels.Select(_ => new int[labels.Count])];
        for (int s = 0; s < gold.Count; s++)
            for (int i = 0; i < gold[s].Count; i++)
                counts[IndexOf(gold[s][i], "gold", s, i)][IndexOf(predicted[s][i], "predicted", s, i)]++;
        return counts;

        int IndexOf(string tag, string side, int sentence, int position) => index.TryGetValue(tag, out int k)
            ? k
            : throw new SharpTuneException(
                $"Sentence {sentence}, token {position}: {side} tag '{tag}' is not among the labels ({string.Join(", ", labels)}).");
    }

    // ---- default mode: seqeval.metrics.sequence_labeling.get_entities ----

    /// <summary>
    /// Every sentence followed by an O, read as one sequence — seqeval's flattening of nested lists — so that
    /// chunk boundaries and positions are exactly seqeval's. Positions are those of the flat sequence, the same
    /// for gold and predictions since the sentence lengths match.
    /// </summary>
    private static Dictionary<string, HashSet<(int Sentence, int Start, int End)>> DefaultEntitiesByType(
        IReadOnlyList<IReadOnlyList<string>> sentences, string side)
    {
        var flat = new List<string>();
        for (int s = 0; s < sentences.Count; s++)
        {
            for (int i = 0; i < sentences[s].Count; i++) CheckNotEmpty(sentences[s][i], s, i, side);
            flat.AddRange(sentences[s]);
            flat.Add("O");
        }

        var byType = new Dictionary<string, HashSet<(int, int, int)>>(StringComparer.Ordinal);
        foreach ((string type, int start, int end) in GetEntities(flat))
            Add(byType, type, (0, start, end));
        return byType;
    }

    private static List<(string Type, int Start, int End)> GetEntities(IReadOnlyList<string> tags)
    {
        var chunks = new List<(string, int, int)>();
        char previousPrefix = 'O';
        string previousType = "";
        int begin = 0;
        // One O past the end closes a chunk still open at the last token.
        for (int i = 0; i <= tags.Count; i++)
        {
            string tag = i < tags.Count ? tags[i] : "O";
            char prefix = tag[0];
            string type = LenientType(tag);
            if (EndOfChunk(previousPrefix, prefix, previousType, type)) chunks.Add((previousType, begin, i - 1));
            if (StartOfChunk(previousPrefix, prefix, previousType, type)) begin = i;
            previousPrefix = prefix;
            previousType = type;
        }
        return chunks;
    }

    /// <summary>seqeval: <c>chunk[1:].split('-', maxsplit=1)[-1] or '_'</c> — the text after the first dash that follows the prefix.</summary>
    private static string LenientType(string tag)
    {
        string rest = tag[1..];
        int dash = rest.IndexOf('-', StringComparison.Ordinal);
        string type = dash < 0 ? rest : rest[(dash + 1)..];
        return type.Length == 0 ? "_" : type;
    }

    /// <summary>seqeval's <c>end_of_chunk</c>: whether a chunk ended at the previous token.</summary>
    private static bool EndOfChunk(char previousPrefix, char prefix, string previousType, string type) =>
        previousPrefix is 'E' or 'S'
        || (previousPrefix is 'B' or 'I' && prefix is 'B' or 'S' or 'O')
        || (previousPrefix is not ('O' or '.') && previousType != type);

    /// <summary>seqeval's <c>start_of_chunk</c>: whether a chunk starts at this token.</summary>
    private static bool StartOfChunk(char previousPrefix, char prefix, string previousType, string type) =>
        prefix is 'B' or 'S'
        || (previousPrefix is 'E' or 'S' or 'O' && prefix is 'E' or 'I')
        || (prefix is not ('O' or '.') && previousType != type);

    // ---- strict mode: seqeval.scheme.Tokens / Entities ----

    [Flags]
    private enum Prefix { I = 1, O = 2, B = 4, E = 8, S = 16, U = 32, L = 64, Any = I | O | B | E | S | U | L }

    private enum TypeMatch { Same, Different, Any }

    /// <summary>A token is (start of / inside / the token after the end of) an entity when one pattern matches it and the token before it.</summary>
    private readonly record struct Pattern(Prefix Previous, Prefix Current, TypeMatch Types);

    private sealed record SchemeRules(Prefix Allowed, Pattern[] Start, Pattern[] Inside, Pattern[] End);

    private readonly record struct Token(Prefix Prefix, string Type);

    private static Pattern P(Prefix previous, Prefix current, TypeMatch types) => new(previous, current, types);

    // The pattern tables of seqeval/scheme.py, one to one.
    private static readonly Dictionary<TagScheme, SchemeRules> Rules = new()
    {
        [TagScheme.IOB1] = new(
            Prefix.I | Prefix.O | Prefix.B,
            Start: [P(Prefix.O, Prefix.I, TypeMatch.Any), P(Prefix.I, Prefix.I, TypeMatch.Different), P(Prefix.B, Prefix.I, TypeMatch.Any),
                P(Prefix.I, Prefix.B, TypeMatch.Same), P(Prefix.B, Prefix.B, TypeMatch.Same)],
            Inside: [P(Prefix.B, Prefix.I, TypeMatch.Same), P(Prefix.I, Prefix.I, TypeMatch.Same)],
            End: [P(Prefix.I, Prefix.I, TypeMatch.Different), P(Prefix.I, Prefix.O, TypeMatch.Any), P(Prefix.I, Prefix.B, TypeMatch.Any),
                P(Prefix.B, Prefix.O, TypeMatch.Any), P(Prefix.B, Prefix.I, TypeMatch.Different), P(Prefix.B, Prefix.B, TypeMatch.Same)]),
        [TagScheme.IOE1] = new(
            Prefix.I | Prefix.O | Prefix.E,
            Start: [P(Prefix.O, Prefix.I, TypeMatch.Any), P(Prefix.I, Prefix.I, TypeMatch.Different), P(Prefix.E, Prefix.I, TypeMatch.Any),
                P(Prefix.E, Prefix.E, TypeMatch.Same)],
            Inside: [P(Prefix.I, Prefix.I, TypeMatch.Same), P(Prefix.I, Prefix.E, TypeMatch.Same)],
            End: [P(Prefix.I, Prefix.I, TypeMatch.Different), P(Prefix.I, Prefix.O, TypeMatch.Any), P(Prefix.I, Prefix.E, TypeMatch.Different),
                P(Prefix.E, Prefix.I, TypeMatch.Same), P(Prefix.E, Prefix.E, TypeMatch.Same)]),
        [TagScheme.IOB2] = new(
            Prefix.I | Prefix.O | Prefix.B,
            Start: [P(Prefix.Any, Prefix.B, TypeMatch.Any)],
            Inside: [P(Prefix.B, Prefix.I, TypeMatch.Same), P(Prefix.I, Prefix.I, TypeMatch.Same)],
            End: [P(Prefix.I, Prefix.O, TypeMatch.Any), P(Prefix.I, Prefix.I, TypeMatch.Different), P(Prefix.I, Prefix.B, TypeMatch.Any),
                P(Prefix.B, Prefix.O, TypeMatch.Any), P(Prefix.B, Prefix.I, TypeMatch.Different), P(Prefix.B, Prefix.B, TypeMatch.Any)]),
        [TagScheme.IOE2] = new(
            Prefix.I | Prefix.O | Prefix.E,
            Start: [P(Prefix.O, Prefix.I, TypeMatch.Any), P(Prefix.O, Prefix.E, TypeMatch.Any), P(Prefix.E, Prefix.I, TypeMatch.Any),
                P(Prefix.E, Prefix.E, TypeMatch.Any), P(Prefix.I, Prefix.I, TypeMatch.Different), P(Prefix.I, Prefix.E, TypeMatch.Different)],
            Inside: [P(Prefix.I, Prefix.E, TypeMatch.Same), P(Prefix.I, Prefix.I, TypeMatch.Same)],
            End: [P(Prefix.E, Prefix.Any, TypeMatch.Any)]),
        [TagScheme.IOBES] = new(
            Prefix.I | Prefix.O | Prefix.B | Prefix.E | Prefix.S,
            Start: [P(Prefix.Any, Prefix.B, TypeMatch.Any), P(Prefix.Any, Prefix.S, TypeMatch.Any)],
            Inside: [P(Prefix.B, Prefix.I, TypeMatch.Same), P(Prefix.B, Prefix.E, TypeMatch.Same), P(Prefix.I, Prefix.I, TypeMatch.Same),
                P(Prefix.I, Prefix.E, TypeMatch.Same)],
            End: [P(Prefix.S, Prefix.Any, TypeMatch.Any), P(Prefix.E, Prefix.Any, TypeMatch.Any)]),
        [TagScheme.BILOU] = new(
            Prefix.B | Prefix.I | Prefix.L | Prefix.O | Prefix.U,
            Start: [P(Prefix.Any, Prefix.B, TypeMatch.Any), P(Prefix.Any, Prefix.U, TypeMatch.Any)],
            Inside: [P(Prefix.B, Prefix.I, TypeMatch.Same), P(Prefix.B, Prefix.L, TypeMatch.Same), P(Prefix.I, Prefix.I, TypeMatch.Same),
                P(Prefix.I, Prefix.L, TypeMatch.Same)],
            End: [P(Prefix.U, Prefix.Any, TypeMatch.Any), P(Prefix.L, Prefix.Any, TypeMatch.Any)]),
    };

    private static Dictionary<string, HashSet<(int Sentence, int Start, int End)>> StrictEntitiesByType(
        IReadOnlyList<IReadOnlyList<string>> sentences, TagScheme scheme, string side)
    {
        var byType = new Dictionary<string, HashSet<(int, int, int)>>(StringComparer.Ordinal);
        for (int s = 0; s < sentences.Count; s++)
            foreach ((string type, int start, int end) in StrictEntities(sentences[s], scheme, s, side))
                Add(byType, type, (s, start, end));
        return byType;
    }

    /// <summary>seqeval's <c>Tokens.entities</c>, with the end made inclusive.</summary>
    private static List<(string Type, int Start, int End)> StrictEntities(
        IReadOnlyList<string> tags, TagScheme scheme, int? sentence, string side = "")
    {
        SchemeRules rules = Rules.TryGetValue(scheme, out SchemeRules? found)
            ? found
            : throw new ArgumentOutOfRangeException(nameof(scheme), scheme, "Not a tag scheme.");

        // seqeval rejects a bad tag (KeyError or ValueError) before or while reading; reject all of them up front.
        var tokens = new Token[tags.Count + 1];
        for (int i = 0; i < tags.Count; i++)
        {
            CheckNotEmpty(tags[i], sentence, i, side);
            if (ReadStrictPrefix(tags[i][0]) is not Prefix prefix || (prefix & rules.Allowed) == 0)
                throw new SharpTuneException(
                    $"{Where(sentence, i, side)}tag '{tags[i]}' is not a {scheme} tag; allowed prefixes: {Describe(rules.Allowed)}.");
            tokens[i] = new Token(prefix, StrictType(tags[i]));
        }
        // One O past the end, as seqeval's extended_tokens, so that an entity can end at the last token.
        Token outside = tokens[tags.Count] = new Token(Prefix.O, "_");

        var entities = new List<(string, int, int)>();
        Token previous = outside;
        int position = 0;
        while (position < tokens.Length)
        {
            Token token = tokens[position];
            if (Matches(rules.Start, previous, token))
            {
                int end = Forward(position + 1, token);
                if (Matches(rules.End, tokens[end - 1], tokens[end])) entities.Add((token.Type, position, end - 1));
                position = end;
            }
            else
            {
                position++;
            }
            previous = tokens[position - 1];
        }
        return entities;

        // The first token after `start` that is not inside the entity; the final O never is.
        int Forward(int start, Token previousToken)
        {
            int i = start;
            while (i < tokens.Length && Matches(rules.Inside, previousToken, tokens[i])) previousToken = tokens[i++];
            return i;
        }
    }

    private static bool Matches(Pattern[] patterns, Token previous, Token current)
    {
        foreach (Pattern pattern in patterns)
        {
            bool types = pattern.Types switch
            {
                TypeMatch.Same => previous.Type == current.Type,
                TypeMatch.Different => previous.Type != current.Type,
                _ => true,
            };
            if ((previous.Prefix & pattern.Previous) != 0 && (current.Prefix & pattern.Current) != 0 && types) return true;
        }
        return false;
    }

    /// <summary>seqeval's <c>Token</c>: the first character is the prefix, whatever follows.</summary>
    private static Prefix? ReadStrictPrefix(char first) => first switch
    {
        'I' => Prefix.I, 'O' => Prefix.O, 'B' => Prefix.B, 'E' => Prefix.E, 'S' => Prefix.S, 'U' => Prefix.U, 'L' => Prefix.L,
        _ => null,
    };

    /// <summary>seqeval's <c>Token.tag</c>: <c>token[1:].strip('-') or '_'</c>.</summary>
    private static string StrictType(string tag)
    {
        string type = tag[1..].Trim('-');
        return type.Length == 0 ? "_" : type;
    }

    /// <summary>The prefix of a tag that follows a scheme (<c>O</c>, <c>B</c>, <c>B-PER</c>); null for others such as <c>NOUN</c>.</summary>
    private static Prefix? ReadPrefix(string tag) =>
        tag.Length == 1 || (tag.Length > 1 && tag[1] == '-') ? ReadStrictPrefix(tag[0]) : null;

    // ---- shared ----

    private static void Add(Dictionary<string, HashSet<(int, int, int)>> byType, string type, (int, int, int) entity)
    {
        if (!byType.TryGetValue(type, out HashSet<(int, int, int)>? set)) byType[type] = set = [];
        set.Add(entity);
    }

    private static EntityScore Score(string type, int correct, int predicted, int gold)
    {
        double precision = predicted == 0 ? 0 : (double)correct / predicted;
        double recall = gold == 0 ? 0 : (double)correct / gold;
        double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
        return new EntityScore(type, precision, recall, f1, gold);
    }

    private static double Mean(EntityScore[] scores, Func<EntityScore, double> value) =>
        scores.Length == 0 ? 0 : scores.Average(value);

    private static void CheckShapes(IReadOnlyList<IReadOnlyList<string>> gold, IReadOnlyList<IReadOnlyList<string>> predicted)
    {
        ArgumentNullException.ThrowIfNull(gold);
        ArgumentNullException.ThrowIfNull(predicted);
        if (gold.Count != predicted.Count)
            throw new SharpTuneException($"{gold.Count} gold sentences but {predicted.Count} predicted ones.");
        for (int s = 0; s < gold.Count; s++)
            if (gold[s].Count != predicted[s].Count)
                throw new SharpTuneException($"Sentence {s}: {gold[s].Count} gold tags but {predicted[s].Count} predicted ones.");
    }

    private static void CheckNotEmpty(string tag, int? sentence, int position, string side = "")
    {
        if (string.IsNullOrEmpty(tag)) throw new SharpTuneException($"{Where(sentence, position, side)}tag is empty.");
    }

    private static string Where(int? sentence, int position, string side) =>
        (sentence is int s ? $"Sentence {s}, token {position}: " : $"Token {position}: ") + (side.Length > 0 ? side + " " : "");

    private static string Describe(Prefix prefixes) =>
        string.Join(", ", new[] { Prefix.B, Prefix.I, Prefix.E, Prefix.L, Prefix.S, Prefix.U, Prefix.O }
            .Where(p => (prefixes & p) != 0));

    private static string DescribePrefixes(IReadOnlyList<IReadOnlyList<string>> sentences)
    {
        var prefixes = sentences.SelectMany(s => s)
            .Select(t => ReadPrefix(t)?.ToString() ?? $"'{t}' (no scheme prefix)")
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .Take(10)
            .ToList();
        return prefixes.Count == 0 ? "none" : string.Join(", ", prefixes);
    }
}
