using System.Text;

namespace SharpTune.Data;

/// <summary>
/// Splits CSV/TSV text into records (RFC 4180): fields may be quoted, a quote inside a quoted field is
/// doubled, quoted fields may hold delimiters and line breaks; records end with LF or CRLF. A quote inside
/// an unquoted field is kept literally, as Python's csv module and pandas do. Blank lines are skipped.
/// </summary>
internal sealed class DelimitedReader(string content, char delimiter)
{
    private int _pos = content.Length > 0 && content[0] == '\uFEFF' ? 1 : 0;
    private int _line = 1;

    /// <summary>
    /// Reads the next record into <paramref name="fields"/>. Returns false at the end of the text.
    /// A malformed record sets <paramref name="error"/>; reading resumes after it.
    /// </summary>
    public bool Read(List<string> fields, out int startLine, out string? error)
    {
        fields.Clear();
        error = null;
        while (_pos < content.Length && (content[_pos] == '\n' || content[_pos] == '\r'))
            ConsumeLineEnd();
        startLine = _line;
        if (_pos >= content.Length) return false;

        while (true)
        {
            if (_pos >= content.Length) { fields.Add(""); return true; } // the text ends with a delimiter
            if (content[_pos] == '"')
            {
                if (!ReadQuoted(fields, out error)) return true;
                if (_pos >= content.Length) return true;
                char next = content[_pos];
                if (next == delimiter) { _pos++; continue; }
                if (next is '\n' or '\r') { ConsumeLineEnd(); return true; }
                error = $"unexpected character '{next}' after the closing quote of field {fields.Count}";
                SkipRestOfLine();
                return true;
            }

            int length = content.AsSpan(_pos).IndexOfAny(delimiter, '\n', '\r');
            int end = length < 0 ? content.Length : _pos + length;
            fields.Add(content.Substring(_pos, end - _pos));
            _pos = end;
            if (_pos >= content.Length) return true;
            if (content[_pos] == delimiter) { _pos++; continue; }
            ConsumeLineEnd();
            return true;
        }
    }

    private bool ReadQuoted(List<string> fields, out string? error)
    {
        int openLine = _line;
        _pos++;
        int segment = _pos;
        StringBuilder? unescaped = null;
        while (true)
        {
            int quote = content.IndexOf('"', _pos);
            if (quote < 0)
            {
                _line += content.AsSpan(_pos).Count('\n');
                _pos = content.Length;
                error = $"unterminated quoted field (the quote opened on line {openLine} is never closed)";
                return false;
            }
            _line += content.AsSpan(_pos, quote - _pos).Count('\n');
            if (quote + 1 < content.Length && content[quote + 1] == '"')
            {
                unescaped ??= new StringBuilder();
                unescaped.Append(content, segment, quote + 1 - segment);
                _pos = segment = quote + 2;
                continue;
            }
            fields.Add(unescaped is null
                ? content.Substring(segment, quote - segment)
                : unescaped.Append(content, segment, quote - segment).ToString());
            _pos = quote + 1;
            error = null;
            return true;
        }
    }

    private void ConsumeLineEnd()
    {
        if (content[_pos] == '\r' && _pos + 1 < content.Length && content[_pos + 1] == '\n') _pos++;
        _pos++;
        _line++;
    }

    private void SkipRestOfLine()
    {
        int length = content.AsSpan(_pos).IndexOfAny('\n', '\r');
        _pos = length < 0 ? content.Length : _pos + length;
        if (_pos < content.Length) ConsumeLineEnd();
    }
}
