namespace SharpTune.Tokenization;

/// <summary>One token of a text before special tokens are added: its id, its UTF-16 offsets [Start, End) in the text, and the index of its pre-tokenizer word.</summary>
/// <param name="Id">Token id.</param>
/// <param name="Start">Offset of its first character in the text.</param>
/// <param name="End">Offset after its last character.</param>
/// <param name="Word">Index of the pre-tokenizer word it belongs to (0-based, counted over the whole text).</param>
public readonly record struct Piece(int Id, int Start, int End, int Word);
