using SharpTune.Training;

namespace SharpTune.Tests.Training;

// Expected numbers are worked out by hand from seqeval's source (seqeval/metrics/sequence_labeling.py:
// get_entities, end_of_chunk, start_of_chunk; seqeval/scheme.py: Tokens, the scheme pattern tables) and its
// README and docstrings. Entity ends are inclusive here; seqeval's strict Entity.end is exclusive (one more).
public class EntityMetricsTests
{
    private const double Tolerance = 1e-12;

    // seqeval's README example.
    private static readonly string[][] ReadmeGold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]];
    private static readonly string[][] ReadmePredicted = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]];

    [Fact]
    public void Readme_example_scores_f1_one_half_with_seqevals_classification_report_rows()
    {
        // Gold MISC 3..5 and PER; predicted MISC 2..5 (wrong start) and PER. seqeval's classification_report:
        // MISC 0.00 0.00 0.00 1; PER 1.00 1.00 1.00 1; micro 0.50 0.50 0.50 2; macro 0.50 0.50 0.50 2.
        // accuracy_score: tokens 2 (O vs B-MISC) and 3 (B-MISC vs I-MISC) differ, 8 of 10 right = 0.80.
        EntityReport report = EntityMetrics.Compute(ReadmeGold, ReadmePredicted);

        Assert.Equal([new("MISC", 0, 0, 0, 1), new("PER", 1, 1, 1, 1)], report.PerType);
        Assert.Equal(0.5, report.MicroPrecision, Tolerance);
        Assert.Equal(0.5, report.MicroRecall, Tolerance);
        Assert.Equal(0.5, report.MicroF1, Tolerance);
        Assert.Equal(0.5, report.MacroPrecision, Tolerance);
        Assert.Equal(0.5, report.MacroRecall, Tolerance);
        Assert.Equal(0.5, report.MacroF1, Tolerance);
        Assert.Equal(2, report.Support);
        Assert.Equal(0.8, report.TokenAccuracy, Tolerance);
    }

    [Fact]
    public void Readme_example_scores_the_same_in_strict_iob2_mode()
    {
        // The README's v1 classification_report(scheme=IOB2) prints the same rows: all tags are valid IOB2.
        EntityReport report = EntityMetrics.Compute(ReadmeGold, ReadmePredicted, strict: true, TagScheme.IOB2);

        Assert.Equal([new("MISC", 0, 0, 0, 1), new("PER", 1, 1, 1, 1)], report.PerType);
        Assert.Equal(0.5, report.MicroF1, Tolerance);
        Assert.Equal(0.5, report.MacroF1, Tolerance);
    }

    [Fact]
    public void Get_entities_docstring_example()
    {
        // get_entities(['B-PER', 'I-PER', 'O', 'B-LOC']) == [('PER', 0, 1), ('LOC', 3, 3)]
        Assert.Equal([("PER", 0, 1), ("LOC", 3, 3)], EntityMetrics.Entities(["B-PER", "I-PER", "O", "B-LOC"]));
    }

    [Fact]
    public void An_I_tag_without_B_is_an_entity_by_default_but_not_in_strict_iob2()
    {
        // Default: O→I starts a chunk (start_of_chunk), I→O ends it: PER 1..2.
        // Strict IOB2: only B- starts an entity (start pattern (ANY, B)), so there is none.
        string[] tags = ["O", "I-PER", "I-PER", "O"];
        Assert.Equal([("PER", 1, 2)], EntityMetrics.Entities(tags));
        Assert.Empty(EntityMetrics.StrictEntities(tags, TagScheme.IOB2));
    }

    [Fact]
    public void Predicting_I_for_B_is_right_by_default_and_wrong_in_strict_mode()
    {
        // Gold B-PER I-PER O: PER 0..1 in both modes. Predicted I-PER I-PER O: PER 0..1 by default → P = R = F1 = 1;
        // strict: no predicted entity → P = 0 (nothing predicted, zero division → 0), R = 0/1, F1 = 0, support 1.
        string[][] gold = [["B-PER", "I-PER", "O"]];
        string[][] predicted = [["I-PER", "I-PER", "O"]];

        EntityReport lenient = EntityMetrics.Compute(gold, predicted);
        Assert.Equal([new("PER", 1, 1, 1, 1)], lenient.PerType);
        Assert.Equal(1, lenient.MicroF1, Tolerance);

        EntityReport strict = EntityMetrics.Compute(gold, predicted, strict: true, TagScheme.IOB2);
        Assert.Equal([new("PER", 0, 0, 0, 1)], strict.PerType);
        Assert.Equal(0, strict.MicroPrecision);
        Assert.Equal(0, strict.MicroRecall);
        Assert.Equal(0, strict.MicroF1);
        // Token accuracy does not depend on the mode: 2 of 3 tags equal.
        Assert.Equal(2.0 / 3, strict.TokenAccuracy, Tolerance);
    }

    [Fact]
    public void A_B_tag_after_a_chunk_of_the_same_type_starts_a_second_entity()
    {
        // I→B ends the chunk (PER 0..1) and B starts one; the closing O ends PER 2..2. Strict IOB2 agrees.
        string[] tags = ["B-PER", "I-PER", "B-PER"];
        Assert.Equal([("PER", 0, 1), ("PER", 2, 2)], EntityMetrics.Entities(tags));
        Assert.Equal([("PER", 0, 1), ("PER", 2, 2)], EntityMetrics.StrictEntities(tags, TagScheme.IOB2));

        // Predicting B-PER I-PER I-PER merges them into PER 0..2: no match, P = 0/1, R = 0/2, support 2.
        EntityReport report = EntityMetrics.Compute([tags], [["B-PER", "I-PER", "I-PER"]]);
        Assert.Equal([new("PER", 0, 0, 0, 2)], report.PerType);
        Assert.Equal(2.0 / 3, report.TokenAccuracy, Tolerance);
    }

    [Fact]
    public void A_type_change_inside_a_chunk_splits_it_by_default_and_drops_the_I_in_strict_iob2()
    {
        // Default: at I-LOC prev_type PER != LOC ends PER 0..0 and starts LOC, which O ends: LOC 1..1.
        // Strict IOB2: I-LOC is not inside B-PER (pattern (B, I, SAME)); (B, I, DIFF) is an end, so PER 0..0;
        // I-LOC starts nothing (only B- starts), so LOC is no entity.
        string[] tags = ["B-PER", "I-LOC", "O"];
        Assert.Equal([("PER", 0, 0), ("LOC", 1, 1)], EntityMetrics.Entities(tags));
        Assert.Equal([("PER", 0, 0)], EntityMetrics.StrictEntities(tags, TagScheme.IOB2));
    }

    [Fact]
    public void All_O_gives_no_entities_and_zero_scores_without_exceptions()
    {
        // No types at all: micro 0/0 → 0 (zero_division 'warn' acts as 0); macro over no types is 0 here
        // (seqeval's numpy mean would be NaN). Every tag equal → accuracy 1.
        EntityReport report = EntityMetrics.Compute([["O", "O", "O"]], [["O", "O", "O"]]);
        Assert.Empty(report.PerType);
        Assert.Equal(0, report.MicroPrecision);
        Assert.Equal(0, report.MicroRecall);
        Assert.Equal(0, report.MicroF1);
        Assert.Equal(0, report.MacroF1);
        Assert.Equal(0, report.Support);
        Assert.Equal(1, report.TokenAccuracy);
    }

    [Fact]
    public void A_type_only_predicted_scores_zero_with_support_zero_and_counts_in_the_macro_average()
    {
        // Gold all O, predicted PER 0..0: PER has P = 0/1, R = 0/0 → 0, F1 0, support 0.
        EntityReport report = EntityMetrics.Compute([["O", "O"]], [["B-PER", "O"]]);
        Assert.Equal([new("PER", 0, 0, 0, 0)], report.PerType);
        Assert.Equal(0, report.MicroPrecision);
        Assert.Equal(0, report.MicroRecall);
        Assert.Equal(0.5, report.TokenAccuracy, Tolerance);
    }

    [Fact]
    public void Bioes_singletons_and_E_endings_make_entities_in_both_modes()
    {
        // Default: S starts; B after S ends LOC 0..0 (prev S); E then O ends PER 1..3 (prev E); the final S-LOC
        // is ended by the appended O: LOC 5..5.
        // Strict IOBES: S-LOC starts, nothing is inside an S, (S, ANY) ends it; B-PER I-PER E-PER are inside
        // (B,I,SAME), (I,E,SAME) and (E, ANY) ends at O.
        string[] tags = ["S-LOC", "B-PER", "I-PER", "E-PER", "O", "S-LOC"];
        (string, int, int)[] expected = [("LOC", 0, 0), ("PER", 1, 3), ("LOC", 5, 5)];
        Assert.Equal(expected, EntityMetrics.Entities(tags));
        Assert.Equal(expected, EntityMetrics.StrictEntities(tags, TagScheme.IOBES));
    }

    [Fact]
    public void A_bioes_chunk_without_its_E_is_an_entity_only_by_default()
    {
        // Default: B I then O ends the chunk (I→O): PER 0..1. Strict IOBES: only (S, ANY) and (E, ANY) end an
        // entity, and the token before O is I-PER, so there is none. A lone E- after O starts a chunk by
        // default (O→E) but is no start in strict IOBES (only B and S start).
        Assert.Equal([("PER", 0, 1)], EntityMetrics.Entities(["B-PER", "I-PER", "O"]));
        Assert.Empty(EntityMetrics.StrictEntities(["B-PER", "I-PER", "O"], TagScheme.IOBES));
        Assert.Equal([("PER", 1, 1)], EntityMetrics.Entities(["O", "E-PER", "O"]));
        Assert.Empty(EntityMetrics.StrictEntities(["O", "E-PER", "O"], TagScheme.IOBES));
    }

    [Fact]
    public void Strict_iobes_scores_a_missing_E_as_a_missed_entity()
    {
        // Gold LOC 0..0, PER 2..3; predicted S-LOC O B-PER I-PER: LOC 0..0 only (PER never ends).
        // LOC 1 1 1 (support 1); PER P 0/0 → 0, R 0/1, F1 0 (support 1).
        // Micro: 1 correct, 1 predicted, 2 gold → P 1, R 0.5, F1 2·0.5/1.5 = 2/3. Macro: P = R = F1 = 0.5.
        // Default mode reads predicted B-PER I-PER + O as PER 2..3, a match: every score 1.
        string[][] gold = [["S-LOC", "O", "B-PER", "E-PER"]];
        string[][] predicted = [["S-LOC", "O", "B-PER", "I-PER"]];

        EntityReport strict = EntityMetrics.Compute(gold, predicted, strict: true, TagScheme.IOBES);
        Assert.Equal([new("LOC", 1, 1, 1, 1), new("PER", 0, 0, 0, 1)], strict.PerType);
        Assert.Equal(1, strict.MicroPrecision, Tolerance);
        Assert.Equal(0.5, strict.MicroRecall, Tolerance);
        Assert.Equal(2.0 / 3, strict.MicroF1, Tolerance);
        Assert.Equal(0.5, strict.MacroPrecision, Tolerance);
        Assert.Equal(0.5, strict.MacroRecall, Tolerance);
        Assert.Equal(0.5, strict.MacroF1, Tolerance);

        EntityReport lenient = EntityMetrics.Compute(gold, predicted);
        Assert.Equal(1, lenient.MicroF1, Tolerance);
    }

    [Fact]
    public void Strict_mode_detects_the_scheme_from_the_gold_tags_when_none_is_given()
    {
        // Gold prefixes {S, O, B, E} → IOBES, so the result equals the explicit IOBES one above.
        string[][] gold = [["S-LOC", "O", "B-PER", "E-PER"]];
        string[][] predicted = [["S-LOC", "O", "B-PER", "I-PER"]];
        Assert.Equal(
            EntityMetrics.Compute(gold, predicted, strict: true, TagScheme.IOBES).MicroF1,
            EntityMetrics.Compute(gold, predicted, strict: true).MicroF1);
    }

    [Fact]
    public void Per_type_support_and_micro_versus_macro_averages()
    {
        // Default mode, positions in the flattened corpus (an O after each sentence: sentence 1 starts at 7).
        // Gold:      PER 0..0, LOC 2..3, ORG 5..5, PER 7..8, LOC 10..10.
        // Predicted: PER 0..0, LOC 2..2, ORG 5..5, PER 7..8, MISC 10..10.
        // LOC  tp 0, pred 1, gold 2 → 0    0    0   (2)
        // MISC tp 0, pred 1, gold 0 → 0    0    0   (0)
        // ORG  tp 1, pred 1, gold 1 → 1    1    1   (1)
        // PER  tp 2, pred 2, gold 2 → 1    1    1   (2)
        // Micro: tp 3, pred 5, gold 5 → 0.6 0.6 0.6; macro: (0 + 0 + 1 + 1) / 4 = 0.5 each; support 5.
        // Tokens: I-LOC vs O and B-LOC vs B-MISC differ → 8/10.
        string[][] gold = [["B-PER", "O", "B-LOC", "I-LOC", "O", "B-ORG"], ["B-PER", "I-PER", "O", "B-LOC"]];
        string[][] predicted = [["B-PER", "O", "B-LOC", "O", "O", "B-ORG"], ["B-PER", "I-PER", "O", "B-MISC"]];

        EntityReport report = EntityMetrics.Compute(gold, predicted);

        Assert.Equal(
            [new("LOC", 0, 0, 0, 2), new("MISC", 0, 0, 0, 0), new("ORG", 1, 1, 1, 1), new("PER", 1, 1, 1, 2)],
            report.PerType);
        Assert.Equal(0.6, report.MicroPrecision, Tolerance);
        Assert.Equal(0.6, report.MicroRecall, Tolerance);
        Assert.Equal(0.6, report.MicroF1, Tolerance);
        Assert.Equal(0.5, report.MacroPrecision, Tolerance);
        Assert.Equal(0.5, report.MacroRecall, Tolerance);
        Assert.Equal(0.5, report.MacroF1, Tolerance);
        Assert.Equal(5, report.Support);
        Assert.Equal(0.8, report.TokenAccuracy, Tolerance);
    }

    [Fact]
    public void Micro_f1_is_the_harmonic_mean_of_pooled_precision_and_recall()
    {
        // Gold PER 0..0, LOC 2..2, LOC 4..4; predicted PER 0..0, LOC 2..2 only.
        // PER 1 1 1 (1); LOC P 1/1, R 1/2, F1 2/3 (2). Micro P 2/2 = 1, R 2/3, F1 2·(2/3)/(5/3) = 0.8.
        // Macro P 1, R (1 + 0.5)/2 = 0.75, F1 (1 + 2/3)/2 = 5/6 (the mean of F1s, not F1 of the means).
        string[][] gold = [["B-PER", "O", "B-LOC", "O", "B-LOC"]];
        string[][] predicted = [["B-PER", "O", "B-LOC", "O", "O"]];

        EntityReport report = EntityMetrics.Compute(gold, predicted);

        Assert.Equal(1, report.MicroPrecision, Tolerance);
        Assert.Equal(2.0 / 3, report.MicroRecall, Tolerance);
        Assert.Equal(0.8, report.MicroF1, Tolerance);
        Assert.Equal(1, report.MacroPrecision, Tolerance);
        Assert.Equal(0.75, report.MacroRecall, Tolerance);
        Assert.Equal(5.0 / 6, report.MacroF1, Tolerance);
    }

    [Fact]
    public void Entities_do_not_continue_across_a_sentence_boundary()
    {
        // seqeval flattens [s0, s1] to s0 + ['O'] + s1 + ['O']: the O after sentence 0 ends PER 1..2 and the
        // I-PER opening sentence 1 starts a new chunk (O→I): 2 gold entities. Run together as one sentence the
        // same tags make one entity.
        string[][] sentences = [["O", "B-PER", "I-PER"], ["I-PER", "O"]];
        Assert.Single(EntityMetrics.Entities(["O", "B-PER", "I-PER", "I-PER", "O"]));

        EntityReport report = EntityMetrics.Compute(sentences, sentences);
        Assert.Equal([new("PER", 1, 1, 1, 2)], report.PerType);

        // Strict IOB2 reads each sentence on its own: the I-PER of sentence 1 is inside nothing, so 1 entity.
        Assert.Equal(1, EntityMetrics.Compute(sentences, sentences, strict: true, TagScheme.IOB2).Support);
    }

    [Fact]
    public void An_entity_at_the_same_position_of_another_sentence_does_not_match()
    {
        // Gold PER in sentence 0 at 0..0, predicted PER in sentence 1 at 0..0: different entities in both modes
        // (flattened positions 0 and 3; strict compares the sentence index). P 0/1, R 0/1.
        string[][] gold = [["B-PER", "O"], ["O", "O"]];
        string[][] predicted = [["O", "O"], ["B-PER", "O"]];
        Assert.Equal(0, EntityMetrics.Compute(gold, predicted).MicroF1);
        Assert.Equal(0, EntityMetrics.Compute(gold, predicted, strict: true, TagScheme.IOB2).MicroF1);
    }

    [Theory]
    // Rows of seqeval's tests/test_scheme.py (test_iob1_tokens, test_iob2_tokens, test_ioe2_tokens,
    // test_bilou_tokens), ends made inclusive.
    [InlineData(TagScheme.IOB1, new[] { "I-PER", "B-PER" }, "PER 0 0, PER 1 1")]
    [InlineData(TagScheme.IOB1, new[] { "B-PER" }, "")]
    [InlineData(TagScheme.IOB1, new[] { "B-PER", "I-ORG" }, "ORG 1 1")]
    [InlineData(TagScheme.IOB2, new[] { "I-PER", "B-ORG" }, "ORG 1 1")]
    [InlineData(TagScheme.IOB2, new[] { "B-PER", "B-ORG" }, "PER 0 0, ORG 1 1")]
    [InlineData(TagScheme.IOB2, new[] { "I-PER", "I-PER" }, "")]
    [InlineData(TagScheme.IOB2, new[] { "B", "I" }, "_ 0 1")]
    [InlineData(TagScheme.IOE2, new[] { "I-PER", "E-PER", "E-LOC" }, "PER 0 1, LOC 2 2")]
    [InlineData(TagScheme.IOE2, new[] { "I-PER", "O" }, "")]
    [InlineData(TagScheme.BILOU, new[] { "U-LOC", "B-PER", "L-PER" }, "LOC 0 0, PER 1 2")]
    [InlineData(TagScheme.BILOU, new[] { "B-PER", "I-PER" }, "")]
    public void Strict_entities_follow_seqevals_scheme_tables(TagScheme scheme, string[] tags, string expected)
    {
        string actual = string.Join(", ", EntityMetrics.StrictEntities(tags, scheme).Select(e => $"{e.Type} {e.Start} {e.End}"));
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void A_tag_outside_the_strict_scheme_is_an_error_naming_it()
    {
        // seqeval raises ValueError('Invalid token is found: S-LOC. Allowed prefixes are: …') for S- in IOB2.
        var error = Assert.Throws<SharpTuneException>(() =>
            EntityMetrics.Compute([["O"], ["B-PER", "S-LOC"]], [["O"], ["B-PER", "O"]], strict: true, TagScheme.IOB2));
        Assert.Contains("Sentence 1, token 1", error.Message);
        Assert.Contains("'S-LOC'", error.Message);
        Assert.Contains("IOB2", error.Message);
    }

    [Fact]
    public void Strict_mode_without_a_detectable_scheme_is_an_error()
    {
        var error = Assert.Throws<SharpTuneException>(() =>
            EntityMetrics.Compute([["NOUN", "VERB"]], [["NOUN", "NOUN"]], strict: true));
        Assert.Contains("NOUN", error.Message);
    }

    [Fact]
    public void Mismatched_sentence_lengths_are_an_error_naming_the_sentence()
    {
        var error = Assert.Throws<SharpTuneException>(() =>
            EntityMetrics.Compute([["O"], ["B-PER", "O"]], [["O"], ["B-PER"]]));
        Assert.Contains("Sentence 1", error.Message);

        var count = Assert.Throws<SharpTuneException>(() => EntityMetrics.Compute([["O"], ["O"]], [["O"]]));
        Assert.Contains("2 gold sentences but 1 predicted", count.Message);
    }

    [Theory]
    [InlineData(new[] { "B-PER", "I-PER", "O" }, TagScheme.IOB2)]
    [InlineData(new[] { "B-PER", "O" }, TagScheme.IOB2)]
    [InlineData(new[] { "S-LOC", "O", "B-PER", "I-PER", "E-PER" }, TagScheme.IOBES)]
    [InlineData(new[] { "S-LOC", "O" }, TagScheme.IOBES)]
    [InlineData(new[] { "I-PER", "E-PER", "O" }, TagScheme.IOE2)]
    [InlineData(new[] { "U-LOC", "B-PER", "L-PER", "O" }, TagScheme.BILOU)]
    [InlineData(new[] { "NOUN", "VERB", "O" }, null)]   // POS tags: no scheme prefix
    [InlineData(new[] { "INTJ", "SCONJ" }, null)]       // start with I and S, but not I- or S-
    [InlineData(new[] { "O", "O" }, null)]
    [InlineData(new[] { "I-PER", "O" }, null)]          // IOB1-like; seqeval's auto_detect raises here too
    public void DetectScheme_reads_the_prefixes_that_occur(string[] tags, TagScheme? expected)
    {
        Assert.Equal(expected, EntityMetrics.DetectScheme(tags));
    }

    [Fact]
    public void Token_accuracy_counts_equal_tags_over_all_sentences()
    {
        // 5 tokens; tokens 1 (I-PER vs O) and 3 (B-LOC vs B-ORG) differ → 3/5.
        double accuracy = EntityMetrics.TokenAccuracy([["B-PER", "I-PER"], ["O", "B-LOC", "O"]], [["B-PER", "O"], ["O", "B-ORG", "O"]]);
        Assert.Equal(0.6, accuracy, Tolerance);
        Assert.Equal(0, EntityMetrics.TokenAccuracy([], []));
    }

    [Fact]
    public void Confusion_matrix_counts_gold_rows_against_predicted_columns_in_label_order()
    {
        // Pairs (gold, predicted): (B-PER, B-PER), (I-PER, O), (O, O), (O, I-PER).
        //              O  B-PER  I-PER
        //   O          1    0      1
        //   B-PER      0    1      0
        //   I-PER      1    0      0
        int[][] matrix = EntityMetrics.ConfusionMatrix(
            [["B-PER", "I-PER", "O"], ["O"]], [["B-PER", "O", "O"], ["I-PER"]], ["O", "B-PER", "I-PER"]);
        Assert.Equal([[1, 0, 1], [0, 1, 0], [1, 0, 0]], matrix);
    }

    [Fact]
    public void Confusion_matrix_rejects_a_tag_missing_from_the_labels()
    {
        var error = Assert.Throws<SharpTuneException>(() =>
            EntityMetrics.ConfusionMatrix([["O", "B-LOC"]], [["O", "O"]], ["O", "B-PER"]));
        Assert.Contains("Sentence 0, token 1: gold tag 'B-LOC'", error.Message);
    }
}
