using Google.Protobuf;

namespace SharpTune.Tokenization;

/// <summary>The kind of a SentencePiece vocabulary entry (<c>ModelProto.SentencePiece.Type</c>).</summary>
internal enum SentencePieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>One vocabulary entry of a SentencePiece model.</summary>
internal readonly record struct SentencePieceEntry(string Piece, float Score, SentencePieceType Type);

/// <summary>
/// The parts of a SentencePiece <c>ModelProto</c> (sentencepiece_model.proto) that encoding needs, read with
/// Google.Protobuf's <see cref="CodedInputStream"/> so that no generated classes are required. Unknown fields are
/// skipped, as protobuf does. Defaults are the proto2 defaults of sentencepiece_model.proto.
/// </summary>
internal sealed record SentencePieceModelFile(
    IReadOnlyList<SentencePieceEntry> Pieces,
    int ModelType,
    bool ByteFallback,
    string NormalizerName,
    byte[] PrecompiledCharsMap,
    bool AddDummyPrefix,
    bool RemoveExtraWhitespaces,
    bool EscapeWhitespaces)
{
    /// <summary>trainer_spec.model_type of a Unigram model.</summary>
    public const int Unigram = 1;

    /// <summary>Reads <paramref name="bytes"/> (the contents of <paramref name="source"/>, named in errors).</summary>
    public static SentencePieceModelFile Parse(byte[] bytes, string source)
    {
        try
        {
            return ParseModel(bytes, source);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new SharpTuneException($"{source}: not a valid SentencePiece model (protobuf ModelProto): {e.Message}", e);
        }
    }

    private static SentencePieceModelFile ParseModel(byte[] bytes, string source)
    {
        var pieces = new List<SentencePieceEntry>();
        int modelType = Unigram;
        bool byteFallback = false;
        string normalizerName = "";
        byte[] charsMap = [];
        bool addDummyPrefix = true, removeExtraWhitespaces = true, escapeWhitespaces = true;

        var input = new CodedInputStream(bytes);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case (1 << 3) | 2: // repeated SentencePiece pieces = 1
                    pieces.Add(ParsePiece(input.ReadBytes(), source, pieces.Count));
                    break;
                case (2 << 3) | 2: // TrainerSpec trainer_spec = 2
                    var trainer = new CodedInputStream(input.ReadBytes().ToByteArray());
                    while ((tag = trainer.ReadTag()) != 0)
                    {
                        if (tag == (3 << 3)) modelType = trainer.ReadEnum(); // model_type = 3
                        else if (tag == (35 << 3)) byteFallback = trainer.ReadBool(); // byte_fallback = 35
                        else trainer.SkipLastField();
                    }
                    break;
                case (3 << 3) | 2: // NormalizerSpec normalizer_spec = 3
                    var normalizer = new CodedInputStream(input.ReadBytes().ToByteArray());
                    while ((tag = normalizer.ReadTag()) != 0)
                    {
                        switch (tag)
                        {
                            case (1 << 3) | 2: normalizerName = normalizer.ReadString(); break;
                            case (2 << 3) | 2: charsMap = normalizer.ReadBytes().ToByteArray(); break;
                            case 3 << 3: addDummyPrefix = normalizer.ReadBool(); break;
                            case 4 << 3: removeExtraWhitespaces = normalizer.ReadBool(); break;
                            case 5 << 3: escapeWhitespaces = normalizer.ReadBool(); break;
                            default: normalizer.SkipLastField(); break;
                        }
                    }
                    break;
                default:
                    input.SkipLastField();
                    break;
            }
        }
        if (pieces.Count == 0)
            throw new SharpTuneException($"{source}: the SentencePiece model has no pieces (empty, truncated or not a .model file).");
        return new SentencePieceModelFile(pieces, modelType, byteFallback, normalizerName, charsMap,
            addDummyPrefix, removeExtraWhitespaces, escapeWhitespaces);
    }

    private static SentencePieceEntry ParsePiece(ByteString bytes, string source, int index)
    {
        var input = new CodedInputStream(bytes.ToByteArray());
        string? piece = null;
        float score = 0;
        int type = (int)SentencePieceType.Normal;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case (1 << 3) | 2: piece = input.ReadString(); break;
                case (2 << 3) | 5: score = input.ReadFloat(); break;
                case 3 << 3: type = input.ReadEnum(); break;
                default: input.SkipLastField(); break;
            }
        }
        if (string.IsNullOrEmpty(piece))
            throw new SharpTuneException($"{source}: piece {index} has no text (corrupt SentencePiece model).");
        if (type is < 1 or > 6)
            throw new SharpTuneException($"{source}: piece {index} ('{piece}') has unknown type {type} (allowed 1..6).");
        return new SentencePieceEntry(piece, score, (SentencePieceType)type);
    }
}
