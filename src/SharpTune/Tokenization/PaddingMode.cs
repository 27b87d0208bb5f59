namespace SharpTune.Tokenization;

/// <summary>How <see cref="Tokenizer.EncodeBatch"/> pads the rows of a batch.</summary>
public enum PaddingMode
{
    /// <summary>Pad every row to the longest row of the batch.</summary>
    Longest,
    /// <summary>Pad every row to <c>maxLength</c>.</summary>
    MaxLength,
}
