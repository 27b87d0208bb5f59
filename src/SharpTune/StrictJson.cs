using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune;

/// <summary>
/// JSON parsing for files we did not write. System.Text.Json checks escapes such as a lone <c>\ud800</c> and duplicate
/// keys only when a string is read or a <see cref="JsonObject"/> is first enumerated, where they surface as
/// InvalidOperationException or ArgumentException deep inside a loader; these helpers find them while parsing, as
/// <see cref="JsonException"/>s that the loaders already turn into errors naming the file.
/// </summary>
internal static class StrictJson
{
    /// <summary>Parses with duplicate keys rejected and every string escape checked.</summary>
    /// <exception cref="JsonException">The text is malformed, repeats a key or escapes an invalid UTF-16 sequence.</exception>
    public static JsonNode? Parse(string text)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        CheckEscapes(utf8);
        return JsonNode.Parse(utf8, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false });
    }

    /// <summary>
    /// Reads a JSON file that must hold one object (a config, a tokenizer file, sharptune.json); malformed JSON is a
    /// <see cref="SharpTuneException"/> naming the file and the line, any other root names what was expected.
    /// </summary>
    public static JsonObject ReadObject(string path, string expected = "a JSON object")
    {
        try
        {
            return Parse(File.ReadAllText(path, Encoding.UTF8)) as JsonObject ?? throw new SharpTuneException($"{path}: expected {expected}.");
        }
        catch (JsonException error)
        {
            throw new SharpTuneException($"{path}: invalid JSON at line {error.LineNumber + 1}: {error.Message}", error);
        }
    }

    /// <summary>Reads every escaped string and key once, so that an invalid UTF-16 escape is a <see cref="JsonException"/>.</summary>
    public static void CheckEscapes(string text) => CheckEscapes(Encoding.UTF8.GetBytes(text));

    /// <summary>As <see cref="CheckEscapes(string)"/>, over UTF-8 bytes.</summary>
    public static void CheckEscapes(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8);
        while (reader.Read())
        {
            if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || !reader.ValueIsEscaped) continue;
            try
            {
                reader.GetString();
            }
            catch (InvalidOperationException e)
            {
                throw new JsonException($"invalid string escape at byte {reader.TokenStartIndex}: {e.Message}", null, null, reader.TokenStartIndex, e);
            }
        }
    }
}
