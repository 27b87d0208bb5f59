using System.Text;

namespace SharpTune.Data;

/// <summary>
/// Splits CSV/TSV text into records (RFC 4180): fields may be quoted, a quote inside a quoted field is
/// doubled, quoted fields may hold delimiters and line breaks; records end with LF or CRLF. A quote inside
/// an unquoted field is kept literally, as Python's csv module and pandas do. Blank lines are skipped.
/// Reads its input a character at a time, so a file is never held whole (<see cref="Utf8FileReader"/>).
/// </summary>
internal sealed class DelimitedReader(TextReader input, char delimiter)
{
    private readonly StringBuilder field = new();
    private int _line = 1;
    private bool _started;

    /// <summary>Reads records from text held in memory.</summary>
    public DelimitedReader(string content, char delimiter) : this(new StringReader(content), delimiter) { }

    /// <summary>
    /// Reads the next record into <paramref name="fields"/>. Returns false at the end of the text.
    /// A malformed record sets <paramref name="error"/>; reading resumes after it.
    /// </summary>
    public bool Read(List<string> fields, out int startLine, out string? error)
    {
        if (!_started && input.Peek() == '\uFEFF') input.Read();
        _started = true;
        fields.Clear();
        error = null;
        while (input.Peek() is '\n' or '\r') ConsumeLineEnd();
        startLine = _line;
        if (input.Peek() < 0) return false;

        while (true)
        {
            int c = input.Peek();
            if (c < 0) { fields.Add(""); return true; } // the text ends with a delimiter
            if (c == '"')
            {
                if (!ReadQuoted(fields, out error)) return true;
                int next = input.Peek();
                if (next < 0) return true;
                if (next == delimiter) { input.Read(); continue; }
                if (next is '\n' or '\r') { ConsumeLineEnd(); return true; }
                error = $"unexpected character '{(char)next}' after the closing quote of field {fields.Count}";
                SkipRestOfLine();
                return true;
            }

            field.Clear();
            while ((c = input.Peek()) >= 0 && c != delimiter && c != '\n' && c != '\r') field.Append((char)input.Read());
            fields.Add(field.ToString());
            if (c < 0) return true;
            if (c == delimiter) { input.Read(); continue; }
            ConsumeLineEnd();
            return true;
        }
    }

    private bool ReadQuoted(List<string> fields, out string? error)
    {
        int openLine = _line;
        input.Read();
        field.Clear();
        while (true)
        {
            int c = input.Read();
            if (c < 0)
            {
                error = $"unterminated quoted field (the quote opened on line {openLine} is never closed)";
                return false;
            }
            if (c == '"')
            {
                if (input.Peek() != '"') break;
                input.Read();
            }
            else if (c == '\n') _line++;
            field.Append((char)c);
        }
        fields.Add(field.ToString());
        error = null;
        return true;
    }

    private void ConsumeLineEnd()
    {
        if (input.Read() == '\r' && input.Peek() == '\n') input.Read();
        _line++;
    }

    private void SkipRestOfLine()
    {
        while (input.Peek() is >= 0 and not ('\n' or '\r')) input.Read();
        if (input.Peek() >= 0) ConsumeLineEnd();
    }
}
