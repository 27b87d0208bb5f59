namespace SharpTune;

/// <summary>
/// A user-facing error: bad input (file, line, field, key, shape) with a message that names it.
/// The CLI prints the message without a stack trace.
/// </summary>
public class SharpTuneException : Exception
{
    /// <summary>Creates the error with its message.</summary>
    public SharpTuneException(string message) : base(message) { }

    /// <summary>Creates the error with its message and cause.</summary>
    public SharpTuneException(string message, Exception inner) : base(message, inner) { }
}
