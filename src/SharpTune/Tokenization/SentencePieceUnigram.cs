using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SharpTune.Tokenization;

/// <summary>
/// The SentencePiece Unigram stages of XLM-RoBERTa and DeBERTa-v3 tokenizers — normalizer, Metaspace
/// pre-tokenizer and Unigram model — giving the ids of Hugging Face's Rust <c>tokenizers</c> for a text without
/// special tokens. Special tokens, templates, truncation and padding belong to the surrounding tokenizer.
/// </summary>
/// <remarks>
/// Pipeline (what HF's converters build from a .model file): the precompiled charsmap (nmt_nfkc) applied per
/// grapheme as HF's <c>Precompiled</c> normalizer does; trailing (DeBERTa: also leading) whitespace stripped and
/// runs of spaces collapsed, as the converters configure it; spaces become <c>▁</c> with a
/// <c>▁</c> prepended; the text is split into words before each <c>▁</c>; each word is segmented by Viterbi over
/// the pieces' log-probabilities. A character no piece covers is unknown (score: lowest piece score − 10) and a
/// run of unknown characters becomes one unknown token (HF's <c>fuse_unk</c>). User-defined pieces are taken
/// greedily, longest first, before the Viterbi. Immutable and thread-safe.
/// </remarks>
public sealed class SentencePieceUnigram
{
    private const char Metaspace = '▁';
    // HF's K_UNK_PENALTY (and sentencepiece's kUnkPenalty): how much worse than the worst piece an unknown character scores.
    private const double UnknownPenalty = 10.0;

    private readonly string[] _idToToken;
    private readonly Dictionary<string, int> _tokenToId;
    private readonly PieceTrie _pieces;
    private readonly PieceTrie? _userDefined;
    private readonly double _unknownScore;
    private readonly bool _byteFallback;
    private readonly NormalizerStep[] _normalizers;
    private readonly bool _prependMetaspace;
    private readonly bool _splitWords;
    private readonly byte[]? _modelFileBytes;
    private readonly string _source;

    private SentencePieceUnigram(string[] idToToken, double[] scores, bool[] matchable, bool[] userDefined, int unkId,
        bool byteFallback, NormalizerStep[] normalizers, bool prependMetaspace, bool splitWords, byte[]? modelFileBytes, string source)
    {
        _idToToken = idToToken;
        _tokenToId = new Dictionary<string, int>(idToToken.Length, StringComparer.Ordinal);
        for (int id = 0; id < idToToken.Length; id++) _tokenToId.TryAdd(idToToken[id], id);
        UnkId = unkId;
        // As HF's Unigram: the lowest score over the whole vocabulary, special entries included.
        _unknownScore = (scores.Length == 0 ? 0 : scores.Min()) - UnknownPenalty;
        _pieces = new PieceTrie();
        PieceTrie? user = null;
        for (int id = 0; id < idToToken.Length; id++)
        {
            if (userDefined[id]) (user ??= new PieceTrie()).Add(idToToken[id], id, scores[id]);
            if (matchable[id] || userDefined[id]) _pieces.Add(idToToken[id], id, scores[id]);
        }
        _userDefined = user;
        _byteFallback = byteFallback;
        _normalizers = normalizers;
        _prependMetaspace = prependMetaspace;
        _splitWords = splitWords;
        _modelFileBytes = modelFileBytes;
        _source = source;
    }

    /// <summary>Number of ids after the id mapping (XLM-R: the SentencePiece size + 1 for <c>&lt;pad&gt;</c>; <c>&lt;mask&gt;</c> is not counted).</summary>
    public int VocabSize => _idToToken.Length;

    /// <summary>The id of the unknown token (<c>&lt;unk&gt;</c> = 3 for XLM-R, <c>[UNK]</c> = 3 for DeBERTa-v3).</summary>
    public int UnkId { get; }

    /// <summary>The id of <paramref name="piece"/>, or null when it is not in the vocabulary.</summary>
    public int? TokenToId(string piece) => _tokenToId.TryGetValue(piece, out int id) ? id : null;

    /// <summary>The piece with id <paramref name="id"/>, or null when the id is out of range.</summary>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>
    /// Reads a SentencePiece Unigram model: <c>sentencepiece.bpe.model</c> of XLM-RoBERTa (<paramref name="fairseqIds"/>
    /// true: <c>&lt;s&gt;</c>=0, <c>&lt;pad&gt;</c>=1, <c>&lt;/s&gt;</c>=2, <c>&lt;unk&gt;</c>=3 and piece p ≥ 3 → p + 1, as the
    /// fairseq dictionary) or <c>spm.model</c> of DeBERTa-v3 (false: ids are the piece ids). The flag also picks the
    /// normalizers HF's converter writes for that architecture (XLMRobertaConverter or DebertaV2Converter), so the ids
    /// equal those of the Rust tokenizer built from the same file.
    /// </summary>
    /// <exception cref="SharpTuneException">The file is missing, not a SentencePiece model, not Unigram, or its charsmap is corrupt.</exception>
    public static SentencePieceUnigram FromModelFile(string spmModelPath, bool fairseqIds)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(spmModelPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new SharpTuneException($"{spmModelPath}: cannot read the SentencePiece model: {e.Message}", e);
        }
        var model = SentencePieceModelFile.Parse(bytes, spmModelPath);
        if (model.ModelType != SentencePieceModelFile.Unigram)
        {
            string kind = model.ModelType switch { 2 => "BPE", 3 => "WORD", 4 => "CHAR", _ => model.ModelType.ToString() };
            throw new SharpTuneException($"{spmModelPath}: trainer_spec.model_type is {kind}; only Unigram (1) models are supported.");
        }
        if (!model.EscapeWhitespaces)
            throw new SharpTuneException($"{spmModelPath}: normalizer_spec.escape_whitespaces is false; only models that write spaces as ▁ are supported.");

        var pieces = model.Pieces;
        int unknowns = pieces.Count(p => p.Type == SentencePieceType.Unknown);
        if (unknowns != 1)
            throw new SharpTuneException($"{spmModelPath}: the model has {unknowns} UNKNOWN pieces; exactly one is required.");
        if (fairseqIds && (pieces.Count < 3 || pieces[0].Type != SentencePieceType.Unknown))
            throw new SharpTuneException($"{spmModelPath}: fairseq ids expect <unk>, <s>, </s> as pieces 0, 1, 2 (as XLM-RoBERTa's sentencepiece.bpe.model).");

        // Piece p of the .model gets id Map(p); fairseq's <pad> = 1 has no piece.
        int size = fairseqIds ? pieces.Count + 1 : pieces.Count;
        int Map(int p) => !fairseqIds ? p : p switch { 0 => 3, 1 => 0, 2 => 2, _ => p + 1 };
        var tokens = new string[size];
        var scores = new double[size];
        var matchable = new bool[size];
        var userDefined = new bool[size];
        int unkId = -1;
        if (fairseqIds) tokens[1] = "<pad>";
        for (int p = 0; p < pieces.Count; p++)
        {
            int id = Map(p);
            var piece = pieces[p];
            tokens[id] = piece.Piece;
            // HF's XLMRobertaConverter gives the four fairseq specials score 0.
            scores[id] = fairseqIds && p < 3 ? 0.0 : piece.Score;
            // sentencepiece never matches control, unknown, unused or byte pieces against text.
            matchable[id] = piece.Type == SentencePieceType.Normal;
            userDefined[id] = piece.Type == SentencePieceType.UserDefined;
            if (piece.Type == SentencePieceType.Unknown) unkId = id;
        }

        // The normalizers HF's converters write for these models (convert_slow_tokenizer.py), so that the ids are those of
        // the Rust tokenizer: XLMRobertaConverter keeps SpmConverter's [Precompiled, Strip(right), Replace(" {2,}" → "▁")],
        // DebertaV2Converter uses [Strip, Precompiled, Replace(" {2,}" → " ")]. They stand in for sentencepiece's
        // remove_extra_whitespaces and differ from it only on blanks the charsmap keeps (U+0085 at the end: Rust strips it,
        // sentencepiece gives an unknown piece).
        NormalizerStep? charsMap = model.PrecompiledCharsMap.Length == 0 ? null
            : new NormalizerStep.Precompiled(PrecompiledCharsMap.Parse(model.PrecompiledCharsMap, $"{spmModelPath} (normalizer_spec.precompiled_charsmap)"));
        var spaceRuns = new Regex(" {2,}", RegexOptions.CultureInvariant);
        NormalizerStep?[] steps = fairseqIds
            ? [charsMap, new NormalizerStep.Strip(left: false, right: true), new NormalizerStep.Replace(spaceRuns, "▁")]
            : [new NormalizerStep.Strip(left: true, right: true), charsMap, new NormalizerStep.Replace(spaceRuns, " ")];
        NormalizerStep[] normalizers = [.. steps.OfType<NormalizerStep>()];

        // byte_fallback is ignored as HF does (SpmConverter.handle_byte_fallback is false for these models): the Rust
        // tokenizer gives unknown characters the unk id even when the .model would fall back to byte pieces.
        return new SentencePieceUnigram(tokens, scores, matchable, userDefined, unkId, byteFallback: false, normalizers,
            prependMetaspace: model.AddDummyPrefix, splitWords: true, bytes, spmModelPath);
    }

    /// <summary>
    /// Reads the normalizer, pre-tokenizer and model of a Hugging Face <c>tokenizer.json</c> whose <c>model.type</c> is
    /// <c>Unigram</c> (<c>vocab</c> = [[piece, score], …], <c>unk_id</c>, <c>byte_fallback</c>). Supported normalizers:
    /// <c>Precompiled</c>, <c>Strip</c>, <c>Replace</c>, <c>Lowercase</c>, alone or in a <c>Sequence</c>; the pre-tokenizer
    /// must be <c>Metaspace</c> (alone or as the only member of a <c>Sequence</c>). Ids are the vocab positions, as in the
    /// file. Special <c>added_tokens</c> are never matched inside text; non-special added tokens that are in the vocab
    /// are matched greedily, like user-defined pieces. <paramref name="source"/> names the file in errors.
    /// </summary>
    /// <exception cref="SharpTuneException">A key is missing or has a value this class does not support.</exception>
    public static SentencePieceUnigram FromTokenizerJson(JsonObject root, string source)
    {
        try
        {
            return ReadTokenizerJson(root, source);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException or OverflowException)
        {
            throw new SharpTuneException($"{source}: unexpected value in tokenizer.json: {e.Message}", e);
        }
    }

    private static SentencePieceUnigram ReadTokenizerJson(JsonObject root, string source)
    {
        if (root["model"] is not JsonObject model)
            throw new SharpTuneException($"{source}: tokenizer.json has no 'model' object.");
        string? type = model["type"]?.GetValue<string>();
        if (type != "Unigram")
            throw new SharpTuneException($"{source}: model.type is '{type}'; only 'Unigram' is supported here.");
        if (model["vocab"] is not JsonArray vocab || vocab.Count == 0)
            throw new SharpTuneException($"{source}: model.vocab is missing or empty.");
        var tokens = new string[vocab.Count];
        var scores = new double[vocab.Count];
        for (int id = 0; id < vocab.Count; id++)
        {
            if (vocab[id] is not JsonArray { Count: 2 } entry || entry[0] is not JsonValue piece || !piece.TryGetValue(out string? text)
                || entry[1] is not JsonValue score || !score.TryGetValue(out double value))
                throw new SharpTuneException($"{source}: model.vocab[{id}] is not a [piece, score] pair.");
            tokens[id] = text;
            scores[id] = value;
        }
        if (model["unk_id"] is not JsonValue unkValue)
            throw new SharpTuneException($"{source}: model.unk_id is missing; unknown characters need an id.");
        int unkId = unkValue.GetValue<int>();
        if ((uint)unkId >= (uint)tokens.Length)
            throw new SharpTuneException($"{source}: model.unk_id {unkId} is outside the vocab of {tokens.Length} entries.");
        bool byteFallback = model["byte_fallback"]?.GetValue<bool>() ?? false;

        var matchable = Enumerable.Repeat(true, tokens.Length).ToArray();
        var userDefined = new bool[tokens.Length];
        matchable[unkId] = false;
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = tokens.Length - 1; id >= 0; id--) ids[tokens[id]] = id;
        foreach (var added in root["added_tokens"] as JsonArray ?? [])
        {
            string? content = added?["content"]?.GetValue<string>();
            if (content is null || !ids.TryGetValue(content, out int id)) continue;
            // Special tokens are split off before the model sees the text; non-special ones match greedily.
            bool special = added!["special"]?.GetValue<bool>() ?? false;
            matchable[id] = false;
            userDefined[id] = !special;
        }

        var normalizers = new List<NormalizerStep>();
        if (root["normalizer"] is JsonObject normalizer) AddNormalizer(normalizer, "normalizer", normalizers, source);
        var (prepend, split) = ReadMetaspace(root["pre_tokenizer"], source);
        return new SentencePieceUnigram(tokens, scores, matchable, userDefined, unkId, byteFallback, [.. normalizers],
            prepend, split, modelFileBytes: null, source);
    }

    private static void AddNormalizer(JsonObject node, string key, List<NormalizerStep> steps, string source)
    {
        string? type = node["type"]?.GetValue<string>();
        switch (type)
        {
            case "Sequence":
                var members = node["normalizers"] as JsonArray ?? throw new SharpTuneException($"{source}: {key}.normalizers is missing.");
                for (int i = 0; i < members.Count; i++)
                    AddNormalizer(members[i] as JsonObject ?? throw new SharpTuneException($"{source}: {key}.normalizers[{i}] is not an object."),
                        $"{key}.normalizers[{i}]", steps, source);
                break;
            case "Precompiled":
                string? base64 = node["precompiled_charsmap"]?.GetValue<string>();
                if (string.IsNullOrEmpty(base64)) break; // an empty charsmap is the identity
                byte[] blob;
                try
                {
                    blob = Convert.FromBase64String(base64);
                }
                catch (FormatException e)
                {
                    throw new SharpTuneException($"{source}: {key}.precompiled_charsmap is not valid base64.", e);
                }
                steps.Add(new NormalizerStep.Precompiled(PrecompiledCharsMap.Parse(blob, $"{source} ({key}.precompiled_charsmap)")));
                break;
            case "Strip":
                steps.Add(new NormalizerStep.Strip(node["strip_left"]?.GetValue<bool>() ?? true, node["strip_right"]?.GetValue<bool>() ?? true));
                break;
            case "Replace":
                string content = node["content"]?.GetValue<string>() ?? throw new SharpTuneException($"{source}: {key}.content is missing.");
                Regex pattern;
                if (node["pattern"]?["String"] is JsonValue literal) pattern = new Regex(Regex.Escape(literal.GetValue<string>()), RegexOptions.CultureInvariant);
                else if (node["pattern"]?["Regex"] is JsonValue regex)
                {
                    try
                    {
                        pattern = new Regex(regex.GetValue<string>(), RegexOptions.CultureInvariant);
                    }
                    catch (ArgumentException e)
                    {
                        throw new SharpTuneException($"{source}: {key}.pattern.Regex is not a regex .NET understands: {e.Message}", e);
                    }
                }
                else throw new SharpTuneException($"{source}: {key}.pattern must hold 'String' or 'Regex'.");
                steps.Add(new NormalizerStep.Replace(pattern, content));
                break;
            case "Lowercase":
                steps.Add(new NormalizerStep.Lowercase());
                break;
            default:
                throw new SharpTuneException($"{source}: {key}.type '{type}' is not supported for SentencePiece (allowed: Sequence, Precompiled, Strip, Replace, Lowercase).");
        }
    }

    private static (bool Prepend, bool Split) ReadMetaspace(JsonNode? node, string source)
    {
        const string Key = "pre_tokenizer";
        if (node is JsonObject sequence && sequence["type"]?.GetValue<string>() == "Sequence")
        {
            // DebertaV2Converter wraps Metaspace in a Sequence (with Punctuation first when split_by_punct, unsupported here).
            if (sequence["pretokenizers"] is not JsonArray { Count: 1 } members)
                throw new SharpTuneException($"{source}: {Key} is a Sequence; only a Sequence holding just Metaspace is supported.");
            node = members[0];
        }
        if (node is not JsonObject metaspace || metaspace["type"]?.GetValue<string>() != "Metaspace")
            throw new SharpTuneException($"{source}: {Key}.type must be 'Metaspace' for a SentencePiece tokenizer.");
        string replacement = metaspace["replacement"]?.GetValue<string>() ?? "▁";
        if (replacement != "▁")
            throw new SharpTuneException($"{source}: {Key}.replacement is '{replacement}'; only '▁' is supported.");
        string scheme = metaspace["prepend_scheme"]?.GetValue<string>()
            ?? (metaspace["add_prefix_space"]?.GetValue<bool>() ?? true ? "always" : "never");
        // "first" prepends only to the first section of a text split by added tokens; the model stage sees one section.
        bool prepend = scheme switch
        {
            "always" or "first" => true,
            "never" => false,
            _ => throw new SharpTuneException($"{source}: {Key}.prepend_scheme '{scheme}' is not one of always, first, never."),
        };
        return (prepend, metaspace["split"]?.GetValue<bool>() ?? true);
    }

    /// <summary>
    /// Appends the pieces of <paramref name="text"/> (which holds no special tokens) to <paramref name="pieces"/>.
    /// Offsets are UTF-16 indices into <paramref name="text"/>; a piece starting with <c>▁</c> covers the space it
    /// stands for (the first word's <c>▁</c> shares the span of the first character, as in HF). Words are counted
    /// from <paramref name="firstWord"/>: one per <c>▁</c>-led word. An empty or blank text appends nothing.
    /// </summary>
    public void Tokenize(string text, List<Piece> pieces, int firstWord = 0)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(pieces);
        var normalized = AlignedText.Original(text);
        foreach (var step in _normalizers) normalized = step.Apply(normalized);
        normalized = ToMetaspace(normalized);

        string s = normalized.Text;
        int word = firstWord;
        for (int start = 0; start < s.Length;)
        {
            int end = start + 1;
            if (_splitWords) while (end < s.Length && s[end] != Metaspace) end++;
            else end = s.Length;
            TokenizeWord(normalized, start, end, word, pieces);
            word++;
            start = end;
        }
    }

    /// <summary>Spaces become ▁ and, when the scheme says so, a ▁ is prepended (HF's Metaspace).</summary>
    private AlignedText ToMetaspace(AlignedText text)
    {
        if (text.Text.Length == 0) return text;
        var builder = new AlignedTextBuilder(text.Text.Length + 1);
        if (_prependMetaspace && text.Text[0] != ' ' && text.Text[0] != Metaspace)
            builder.Append(Metaspace.ToString(), text.Starts[0], text.Ends[0]);
        for (int i = 0; i < text.Text.Length; i++)
        {
            if (text.Text[i] == ' ') builder.Append(Metaspace.ToString(), text.Starts[i], text.Ends[i]);
            else builder.Copy(text, i, i + 1);
        }
        return builder.Build();
    }

    private void TokenizeWord(AlignedText text, int from, int to, int word, List<Piece> pieces)
    {
        if (_userDefined is null)
        {
            Segment(text, from, to, word, pieces);
            return;
        }
        // User-defined pieces win wherever they occur, longest first; the stretches between go through the Viterbi.
        int plain = from;
        for (int i = from; i < to;)
        {
            var (length, id, _) = _userDefined.LongestMatch(text.Text, i, to);
            if (length == 0)
            {
                i += AlignedText.CodePointLength(text.Text, i);
                continue;
            }
            Segment(text, plain, i, word, pieces);
            pieces.Add(MakePiece(text, i, i + length, id, word));
            i += length;
            plain = i;
        }
        Segment(text, plain, to, word, pieces);
    }

    /// <summary>Viterbi over units [from, to): HF's Unigram::encode_optimized, then fuse_unk and the id lookup.</summary>
    private void Segment(AlignedText text, int from, int to, int word, List<Piece> pieces)
    {
        int n = to - from;
        if (n == 0) return;
        string s = text.Text;
        var bestScore = new double[n + 1];
        var startsAt = new int[n + 1];
        var ids = new int[n + 1];
        Array.Fill(startsAt, -1);

        for (int pos = 0; pos < n;)
        {
            double scoreHere = bestScore[pos];
            int charLength = AlignedText.CodePointLength(s, from + pos);
            bool hasSingleCharPiece = false;
            // Candidates in order of increasing length; a later one wins only with a strictly better score, as in HF.
            int node = PieceTrie.Root;
            for (int j = from + pos; j < to; j++)
            {
                node = _pieces.Child(node, s[j]);
                if (node < 0) break;
                if (!_pieces.IsPiece(node)) continue;
                int length = j + 1 - (from + pos);
                Relax(pos + length, scoreHere + _pieces.Score(node), _pieces.Id(node));
                if (length == charLength) hasSingleCharPiece = true;
            }
            if (!hasSingleCharPiece) Relax(pos + charLength, scoreHere + _unknownScore, UnkId);
            pos += charLength;

            void Relax(int target, double score, int id)
            {
                if (startsAt[target] < 0 || score > bestScore[target])
                {
                    bestScore[target] = score;
                    startsAt[target] = pos;
                    ids[target] = id;
                }
            }
        }

        // Back from the end; consecutive unknown nodes become one token.
        var found = new List<(int Start, int End, int Id)>();
        for (int end = n; end > 0;)
        {
            int start = startsAt[end];
            if (ids[end] == UnkId && found.Count > 0 && found[^1].Id == UnkId) found[^1] = (start, found[^1].End, UnkId);
            else found.Add((start, end, ids[end]));
            end = start;
        }
        for (int k = found.Count - 1; k >= 0; k--)
        {
            var (start, end, id) = found[k];
            if (id == UnkId) AddUnknown(text, from + start, from + end, word, pieces);
            else pieces.Add(MakePiece(text, from + start, from + end, id, word));
        }
    }

    /// <summary>A run of unknown characters: its own id if the run is a vocab entry, else its bytes (byte fallback), else unk.</summary>
    private void AddUnknown(AlignedText text, int from, int to, int word, List<Piece> pieces)
    {
        string run = text.Text[from..to];
        if (_tokenToId.TryGetValue(run, out int id))
        {
            pieces.Add(MakePiece(text, from, to, id, word));
            return;
        }
        if (_byteFallback)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(run);
            var byteIds = new int[bytes.Length];
            bool all = true;
            for (int b = 0; b < bytes.Length && all; b++) all = _tokenToId.TryGetValue($"<0x{bytes[b]:X2}>", out byteIds[b]);
            if (all)
            {
                foreach (int byteId in byteIds) pieces.Add(MakePiece(text, from, to, byteId, word));
                return;
            }
        }
        pieces.Add(MakePiece(text, from, to, UnkId, word));
    }

    private static Piece MakePiece(AlignedText text, int from, int to, int id, int word)
    {
        int start = int.MaxValue, end = 0;
        for (int i = from; i < to; i++)
        {
            start = Math.Min(start, text.Starts[i]);
            end = Math.Max(end, text.Ends[i]);
        }
        return new Piece(id, start, end, word);
    }

    /// <summary>
    /// Writes the tokenizer into <paramref name="directory"/> (created if needed). An instance read with
    /// <see cref="FromModelFile"/> copies the original .model file bytes under its original file name. An instance
    /// read with <see cref="FromTokenizerJson"/> has no .model file to write and throws: keep (copy) the
    /// tokenizer.json it came from instead.
    /// </summary>
    /// <exception cref="SharpTuneException">The instance came from a tokenizer.json, or the file cannot be written.</exception>
    public void Save(string directory)
    {
        if (_modelFileBytes is null)
            throw new SharpTuneException($"{_source}: this SentencePiece tokenizer was read from a tokenizer.json and has no .model file to save; keep that tokenizer.json with the checkpoint instead.");
        string path = Path.Combine(directory, Path.GetFileName(_source));
        try
        {
            Directory.CreateDirectory(directory);
            File.WriteAllBytes(path, _modelFileBytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SharpTuneException($"{path}: cannot write the SentencePiece model: {e.Message}", e);
        }
    }

    /// <summary>A character trie of pieces (UTF-16 units), one dictionary of edges keyed by (node, char).</summary>
    private sealed class PieceTrie
    {
        public const int Root = 0;
        private readonly Dictionary<long, int> _edges = [];
        private readonly List<int> _ids = [-1];
        private readonly List<double> _scores = [0];

        public void Add(string piece, int id, double score)
        {
            int node = Root;
            foreach (char c in piece)
            {
                long key = ((long)node << 16) | c;
                if (!_edges.TryGetValue(key, out int child))
                {
                    child = _ids.Count;
                    _ids.Add(-1);
                    _scores.Add(0);
                    _edges[key] = child;
                }
                node = child;
            }
            // A duplicated piece (absent from real models) keeps its first id.
            if (_ids[node] < 0)
            {
                _ids[node] = id;
                _scores[node] = score;
            }
        }

        public int Child(int node, char c) => _edges.TryGetValue(((long)node << 16) | c, out int child) ? child : -1;
        public bool IsPiece(int node) => _ids[node] >= 0;
        public int Id(int node) => _ids[node];
        public double Score(int node) => _scores[node];

        /// <summary>(length, id, score) of the longest piece starting at <paramref name="from"/>, or length 0.</summary>
        public (int Length, int Id, double Score) LongestMatch(string s, int from, int to)
        {
            (int, int, double) best = (0, -1, 0);
            int node = Root;
            for (int j = from; j < to; j++)
            {
                node = Child(node, s[j]);
                if (node < 0) break;
                if (IsPiece(node)) best = (j + 1 - from, Id(node), Score(node));
            }
            return best;
        }
    }
}
