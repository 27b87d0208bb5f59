using System.Text.Json;

namespace SharpTune.Data;

/// <summary>One sentence of token-classification data: its tokens and, when labelled, one tag per token.</summary>
/// <param name="Tokens">The tokens (words), as written in the file.</param>
/// <param name="Tags">One tag per token; empty for unlabelled prediction input.</param>
/// <param name="Line">1-based line of the file where the sentence's first token is; 0 when built in memory.</param>
public sealed record TaggedSentence(IReadOnlyList<string> Tokens, IReadOnlyList<string> Tags, int Line)
{
    /// <summary>True when each token has a line of its own (CoNLL): token <c>i</c> is on line <c>Line + i</c>.</summary>
    public bool LinePerToken { get; init; }

    /// <summary>The 1-based line of token <paramref name="index"/> (the sentence's line when tokens share a line).</summary>
    public int TokenLine(int index) => LinePerToken ? Line + index : Line;
}

/// <summary>File formats <see cref="TokenDataset.Load"/> reads.</summary>
public enum TokenDataFormat
{
    /// <summary>CoNLL-style columns: one token per line, a blank line between sentences.</summary>
    Conll,
    /// <summary>JSON lines: one sentence object per line.</summary>
    Jsonl,
}

/// <summary>
/// How <see cref="TokenDataset.Load"/> reads a file. Every property is optional; the defaults read
/// <c>token&lt;TAB&gt;…&lt;TAB&gt;tag</c> CoNLL files and <c>{"tokens": […], "tags": […]}</c> JSON lines as training data.
/// </summary>
public sealed record TokenDataOptions
{
    /// <summary>
    /// The file format. Default (null): from the extension — .conll, .tsv, .txt, .iob, .bio are CoNLL;
    /// .jsonl, .json are JSON lines.
    /// </summary>
    public TokenDataFormat? Format { get; init; }

    /// <summary>CoNLL: the 0-based column that holds the token. Default: 0 (the first column).</summary>
    public int TokenColumn { get; init; }

    /// <summary>
    /// CoNLL: the column that holds the tag, 0-based from the start (0, 1, 2, …) or negative from the end
    /// (-1 is the last column, -2 the one before it). Default: -1, the last column, so that
    /// <c>token POS chunk NER</c> (CoNLL-2003) reads the NER tag; set 1 for its POS tag.
    /// </summary>
    public int TagColumn { get; init; } = -1;

    /// <summary>
    /// Skip bad sentences (a line without the token or tag column, an empty token, bad JSON, token and tag
    /// counts that differ) instead of throwing; <see cref="LoadedTokenData.SkippedSentences"/> counts them.
    /// A bad CoNLL line skips its whole sentence. A missing file or invalid UTF-8 still throws. Default: false.
    /// </summary>
    public bool SkipBadRows { get; init; }

    /// <summary>
    /// Every token needs a tag: true for training and evaluation data. False for prediction input: tags are
    /// read where present (CoNLL: the line has a tag column besides the token's; JSON: a tag key), otherwise
    /// the sentence's <see cref="TaggedSentence.Tags"/> is empty; a sentence tagged only in part is still bad.
    /// Default: true.
    /// </summary>
    public bool RequireTags { get; init; } = true;

    /// <summary>Checks the column numbers.</summary>
    /// <exception cref="SharpTuneException">TokenColumn is negative, or TagColumn names the same column.</exception>
    public void Validate()
    {
        if (TokenColumn < 0)
            throw new SharpTuneException($"TokenDataOptions.TokenColumn is {TokenColumn}; it must be a 0-based column number (0 or more).");
        if (TagColumn == TokenColumn)
            throw new SharpTuneException($"TokenDataOptions.TagColumn and TokenColumn are both {TokenColumn}; the tag needs a column of its own.");
    }
}

/// <summary>
/// The sentences read from one file, with the sentences skipped under <see cref="TokenDataOptions.SkipBadRows"/>.
/// </summary>
/// <param name="Sentences">The sentences in file order.</param>
/// <param name="SkippedSentences">How many sentences were skipped (0 unless <see cref="TokenDataOptions.SkipBadRows"/>).</param>
/// <param name="SkipReasons">Why, for the first <see cref="TextDataset.MaxSkipReasons"/> skipped sentences ("file:line: reason").</param>
/// <param name="Path">The file read.</param>
/// <param name="Format">The format it was read as.</param>
public sealed record LoadedTokenData(
    IReadOnlyList<TaggedSentence> Sentences, int SkippedSentences, IReadOnlyList<string> SkipReasons, string Path, TokenDataFormat Format);

/// <summary>
/// Reads token-classification data (NER, POS tagging, chunking) from CoNLL-style column files or JSON lines
/// into <see cref="TaggedSentence"/>s.
/// </summary>
/// <remarks>
/// <para>Both formats: UTF-8 with or without BOM (invalid bytes are an error naming the line), LF or CRLF line ends.</para>
/// <para>CoNLL: one token per line, its columns separated by a tab — or, when the file holds no tab at all, by runs
/// of spaces. The token is in <see cref="TokenDataOptions.TokenColumn"/>, the tag in <see cref="TokenDataOptions.TagColumn"/>
/// (default: the last column). Blank (or whitespace-only) lines end a sentence; several in a row are one boundary and
/// the last sentence may lack one. Lines starting with <c>-DOCSTART-</c> (CoNLL-2003 document marks) are skipped and
/// also end a sentence. Tokens are kept as written; tags are trimmed.</para>
/// <para>JSON lines: one object per line, <c>{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}</c>. The tokens are
/// under <c>tokens</c> (or <c>words</c>); the tags under the first of <c>tags</c>, <c>ner_tags</c>, <c>pos_tags</c>
/// present. Tokens and tags are strings (tag ids are rejected: export the tag names), one tag per token. Blank lines
/// are ignored.</para>
/// </remarks>
public static class TokenDataset
{
    private static readonly string[] TokenKeys = ["tokens", "words"];
    private static readonly string[] TagKeys = ["tags", "ner_tags", "pos_tags"];

    /// <summary>
    /// True when <paramref name="path"/> holds tagged sentences rather than labelled texts, judged from its start:
    /// .conll/.iob/.bio files; JSON lines whose first object has a <c>tokens</c> (or <c>words</c>) list; .tsv/.txt files
    /// whose first line is not a header naming a text column and whose first 1,000 lines hold a blank line (a sentence end),
    /// and for .txt (which is also plain text, one text per line) whose other lines all have the same two or more columns.
    /// </summary>
    public static bool LooksTagged(string path)
    {
        string extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension is ".conll" or ".iob" or ".bio") return true;
        if (extension is not (".jsonl" or ".json" or ".tsv" or ".txt")) return false;
        using var reader = new StreamReader(path, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        var lines = new List<string>();
        for (string? line = reader.ReadLine(); line is not null && lines.Count < 1000; line = reader.ReadLine()) lines.Add(line);
        string? first = lines.FirstOrDefault(l => l.Trim().Length > 0);
        if (first is null) return false;
        if (extension is ".jsonl" or ".json")
        {
            try
            {
                using var document = JsonDocument.Parse(first);
                return document.RootElement.ValueKind == JsonValueKind.Object &&
                    TokenKeys.Any(k => document.RootElement.TryGetProperty(k, out var tokens) && tokens.ValueKind == JsonValueKind.Array);
            }
            catch (JsonException)
            {
                return false;
            }
        }
        bool header = first.Split('\t').Any(f => TextDataset.TextColumnDefaults.Contains(f.Trim().Trim('"'), StringComparer.Ordinal));
        if (header || !lines.SkipWhile(l => l.Trim().Length == 0).Any(l => l.Trim().Length == 0)) return false;
        if (extension != ".txt") return true;
        // Columns counted as LoadConll splits them; sentences of a plain-text file have all kinds of word counts.
        bool tabs = lines.Any(l => l.Contains('\t'));
        int[] widths = lines.Where(l => l.Trim().Length > 0 && !l.StartsWith("-DOCSTART-", StringComparison.Ordinal))
            .Select(l => tabs ? l.Split('\t').Length : l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length).Distinct().ToArray();
        return widths is [>= 2];
    }

    /// <summary>Reads the sentences of one file.</summary>
    /// <param name="path">A CoNLL (.conll, .tsv, .txt, .iob, .bio) or JSON-lines (.jsonl, .json) file, or any name with <see cref="TokenDataOptions.Format"/> set.</param>
    /// <param name="options">Format, columns, bad-sentence handling and whether tags are required; null for the defaults.</param>
    /// <exception cref="SharpTuneException">
    /// The file is missing, not UTF-8 or holds no sentence; or a sentence is bad and <see cref="TokenDataOptions.SkipBadRows"/>
    /// is off. The message starts with <c>file:line:</c> where a line is to blame.
    /// </exception>
    public static LoadedTokenData Load(string path, TokenDataOptions? options = null)
    {
        options ??= new TokenDataOptions();
        options.Validate();
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: data file not found.");
        TokenDataFormat format = options.Format ?? FormatOf(path);
        string content = TextDataset.ReadUtf8(path);
        var sentences = new Sentences(path, options.SkipBadRows);
        if (format == TokenDataFormat.Jsonl) LoadJsonLines(content, path, options, sentences);
        else LoadConll(content, options, sentences);
        return sentences.Result(format);
    }

    /// <summary>The format a file name implies: .conll/.tsv/.txt/.iob/.bio → CoNLL, .jsonl/.json → JSON lines.</summary>
    /// <exception cref="SharpTuneException">The extension is none of these.</exception>
    public static TokenDataFormat FormatOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".conll" or ".tsv" or ".txt" or ".iob" or ".bio" => TokenDataFormat.Conll,
        ".jsonl" or ".json" => TokenDataFormat.Jsonl,
        var other => throw new SharpTuneException(
            $"{path}: unknown token data file extension '{other}'; use .conll, .tsv, .txt, .iob, .bio, .jsonl or .json, or set TokenDataOptions.Format."),
    };

    /// <summary>
    /// The tag set of training sentences: every distinct tag, sorted ordinally, with <c>O</c> first when present
    /// (see <see cref="LabelSet.FromTags"/>).
    /// </summary>
    /// <exception cref="SharpTuneException">A tag is empty.</exception>
    public static LabelSet TagSet(IEnumerable<TaggedSentence> sentences) => LabelSet.FromTags(sentences.SelectMany(s => s.Tags));

    /// <summary>Checks that every tag of <paramref name="sentences"/> (an eval or test file) is in <paramref name="tags"/>.</summary>
    /// <param name="sentences">The sentences read from <paramref name="path"/>.</param>
    /// <param name="tags">The training tag set.</param>
    /// <param name="path">The file the sentences came from, named in the error.</param>
    /// <exception cref="SharpTuneException">A tag was not seen in training; the message names file:line, the tag and the token.</exception>
    public static void CheckTags(IEnumerable<TaggedSentence> sentences, LabelSet tags, string path)
    {
        foreach (TaggedSentence sentence in sentences)
            for (int i = 0; i < sentence.Tags.Count; i++)
                if (!tags.TryGetId(sentence.Tags[i], out _))
                    throw new SharpTuneException(
                        $"{path}:{sentence.TokenLine(i)}: tag '{sentence.Tags[i]}' (token {i + 1}, '{sentence.Tokens[i]}') was not seen in training " +
                        $"(known: {string.Join(", ", tags.Names)}).");
    }

    private static void LoadConll(string content, TokenDataOptions options, Sentences sentences)
    {
        // Tab-separated when the file has a tab anywhere; otherwise columns are runs of spaces.
        bool tabs = content.Contains('\t');
        var tokens = new List<string>();
        var tags = new List<string>();
        int first = 0;          // line of the sentence's first token; 0 between sentences
        string? problem = null; // why the current sentence is bad (its first bad line), or null
        int problemLine = 0;

        void EndSentence()
        {
            if (first == 0) return;
            if (problem is not null) sentences.Bad(problemLine, problem);
            else sentences.Add(new TaggedSentence(tokens.ToArray(), tags.ToArray(), first) { LinePerToken = true });
            tokens.Clear();
            tags.Clear();
            first = 0;
            problem = null;
        }

        foreach (var (line, text) in TextLines.Of(content))
        {
            if (string.IsNullOrWhiteSpace(text) || text.StartsWith("-DOCSTART-", StringComparison.Ordinal)) { EndSentence(); continue; }

            if (first == 0) first = line;
            if (problem is not null) continue;
            string[] fields = tabs ? text.Split('\t') : text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string? reason = ReadConllLine(fields, options, tabs, tokens, tags);
            if (reason is not null) { problem = reason; problemLine = line; }
        }
        EndSentence();
    }

    /// <summary>Adds the line's token (and tag) to the sentence; returns why the line is bad, or null.</summary>
    private static string? ReadConllLine(string[] fields, TokenDataOptions options, bool tabs, List<string> tokens, List<string> tags)
    {
        string columns = $"{fields.Length} column{(fields.Length == 1 ? "" : "s")} ({(tabs ? "tab-separated" : "space-separated: the file has no tab")})";
        if (options.TokenColumn >= fields.Length)
            return $"the line has {columns}, but the token is read from column {options.TokenColumn} (TokenColumn, 0-based)";
        string token = fields[options.TokenColumn];
        if (string.IsNullOrWhiteSpace(token)) return $"empty token in column {options.TokenColumn}";

        int tagIndex = options.TagColumn >= 0 ? options.TagColumn : fields.Length + options.TagColumn;
        bool hasTag = tagIndex >= 0 && tagIndex < fields.Length && tagIndex != options.TokenColumn;
        if (!hasTag && options.RequireTags)
            return $"no tag: the line has {columns}, the token is column {options.TokenColumn} and the tag is {DescribeTagColumn(options.TagColumn)} (TagColumn)";
        if (hasTag)
        {
            string tag = fields[tagIndex].Trim();
            if (tag.Length == 0) return $"empty tag in column {tagIndex}";
            if (tags.Count != tokens.Count)
                return $"this line has a tag but the sentence's earlier lines have none; tag every token or none";
            tags.Add(tag);
        }
        else if (tags.Count > 0)
            return $"no tag on this line ({columns}) but the sentence's earlier lines have one; tag every token or none";
        tokens.Add(token);
        return null;
    }

    private static string DescribeTagColumn(int column) => column switch
    {
        >= 0 => $"column {column} (0-based)",
        -1 => "the last column",
        _ => $"column {-column} from the end",
    };

    private static void LoadJsonLines(string content, string path, TokenDataOptions options, Sentences sentences)
    {
        foreach (var (line, parsed, error) in JsonLines.Read(content, path))
        {
            if (parsed is not { } document) { sentences.Bad(line, error!); continue; }
            using (document)
            {
                try { sentences.Add(JsonSentence(document.RootElement, line, options.RequireTags)); }
                catch (RowException e) { sentences.Bad(line, e.Message); }
            }
        }
    }

    private static TaggedSentence JsonSentence(JsonElement row, int line, bool requireTags)
    {
        if (row.ValueKind != JsonValueKind.Object) throw new RowException($"expected a JSON object, found {row.ValueKind}");
        string? tokenKey = TokenKeys.FirstOrDefault(k => row.TryGetProperty(k, out _));
        if (tokenKey is null) throw new RowException($"missing key 'tokens' (or 'words'); keys are {Keys(row)}");
        string[] tokens = JsonStrings(row.GetProperty(tokenKey), tokenKey, "token");
        if (tokens.Length == 0) throw new RowException($"key '{tokenKey}' is an empty list; a sentence needs at least one token");
        if (tokens.Any(string.IsNullOrWhiteSpace))
            throw new RowException($"key '{tokenKey}': token {Array.FindIndex(tokens, string.IsNullOrWhiteSpace) + 1} is empty");

        string? tagKey = TagKeys.FirstOrDefault(k => row.TryGetProperty(k, out _));
        if (tagKey is null)
            return requireTags
                ? throw new RowException($"missing key 'tags' (or 'ner_tags', 'pos_tags'); keys are {Keys(row)}")
                : new TaggedSentence(tokens, [], line);
        string[] tags = JsonStrings(row.GetProperty(tagKey), tagKey, "tag").Select(t => t.Trim()).ToArray();
        if (tags.Length != tokens.Length)
            throw new RowException($"'{tokenKey}' has {tokens.Length} items but '{tagKey}' has {tags.Length}; give one tag per token");
        int empty = Array.FindIndex(tags, t => t.Length == 0);
        if (empty >= 0) throw new RowException($"key '{tagKey}': tag {empty + 1} is empty");
        return new TaggedSentence(tokens, tags, line);
    }

    private static string[] JsonStrings(JsonElement value, string key, string what)
    {
        if (value.ValueKind != JsonValueKind.Array) throw new RowException($"key '{key}': expected a list of {what}s, found {value.ValueKind}");
        var items = new string[value.GetArrayLength()];
        for (int i = 0; i < items.Length; i++)
        {
            JsonElement item = value[i];
            if (item.ValueKind != JsonValueKind.String)
                throw new RowException($"key '{key}': {what} {i + 1} is {item.ValueKind} {item.GetRawText()}, not a string" +
                    (item.ValueKind == JsonValueKind.Number && what == "tag" ? " (tag ids? write the tag names)" : ""));
            items[i] = item.GetString()!;
        }
        return items;
    }

    private static string Keys(JsonElement row) => string.Join(", ", row.EnumerateObject().Select(p => $"'{p.Name}'"));

    /// <summary>A bad sentence: skipped or turned into a <see cref="SharpTuneException"/> with file and line.</summary>
    private sealed class RowException(string message) : Exception(message);

    private sealed class Sentences(string path, bool skipBadRows)
    {
        private readonly List<TaggedSentence> _sentences = [];
        private readonly List<string> _reasons = [];
        private int _skipped;

        public void Add(TaggedSentence sentence) => _sentences.Add(sentence);

        public void Bad(int line, string reason)
        {
            string message = $"{path}:{line}: {reason.TrimEnd('.')}.";
            if (!skipBadRows) throw new SharpTuneException(message);
            _skipped++;
            if (_reasons.Count < TextDataset.MaxSkipReasons) _reasons.Add(message);
        }

        public LoadedTokenData Result(TokenDataFormat format) => _sentences.Count > 0
            ? new(_sentences, _skipped, _reasons, path, format)
            : throw new SharpTuneException(
                $"{path}: no sentence found{(_skipped > 0 ? $" ({_skipped} bad sentences skipped; first: {_reasons[0]})" : "")}.");
    }
}
