using System.Runtime.InteropServices;
using Google.Protobuf;

namespace SharpTune.Checkpoints;

// A minimal reader and writer for the parts of an ONNX model (onnx/onnx.proto) that weight import and export need:
// ModelProto.graph → GraphProto {node, initializer, input, output} → NodeProto {input, output, name,
// op_type, attribute} → AttributeProto {name, f, i, t, ints} and TensorProto. Everything else is skipped on read.
// Messages are read field by field from a CodedInputStream over the file, so a 90 MB model is streamed
// once and only the tensor payloads are kept. The writer (OnnxModelWriter, at the end) writes the same messages with
// the same field numbers, plus what a runnable model needs besides: ir_version, opset_import and the typed
// ValueInfoProto of the graph inputs and outputs.

/// <summary>One ONNX tensor (an initializer or a Constant node's value) with its data as little-endian bytes.</summary>
internal sealed record OnnxTensor(string Name, OnnxDataType DataType, long[] Dims, byte[] Data)
{
    /// <summary>Number of elements (product of the dimensions; 1 for a scalar).</summary>
    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);

    /// <summary>The shape as text, e.g. [384, 1536].</summary>
    public string ShapeText => "[" + string.Join(", ", Dims) + "]";

    /// <summary>The values of a FLOAT tensor.</summary>
    public float[] Floats() => DataType == OnnxDataType.Float
        ? MemoryMarshal.Cast<byte, float>(Data).ToArray() // ONNX raw data is little-endian, as is x64
        : throw new InvalidOperationException($"tensor '{Name}' is {DataType}, not Float");

    /// <summary>The values of an INT64 or INT32 tensor, widened to long.</summary>
    public long[] Integers() => DataType switch
    {
        OnnxDataType.Int64 => MemoryMarshal.Cast<byte, long>(Data).ToArray(),
        OnnxDataType.Int32 => MemoryMarshal.Cast<byte, int>(Data).ToArray().Select(v => (long)v).ToArray(),
        _ => throw new InvalidOperationException($"tensor '{Name}' is {DataType}, not an integer type"),
    };
}

/// <summary>TensorProto.DataType values that the importer reads and the exporter writes.</summary>
public enum OnnxDataType
{
    /// <summary>Not set.</summary>
    Undefined = 0,
    /// <summary>32-bit IEEE float.</summary>
    Float = 1,
    /// <summary>8-bit unsigned integer (quantised activations).</summary>
    UInt8 = 2,
    /// <summary>8-bit signed integer (quantised weights).</summary>
    Int8 = 3,
    /// <summary>32-bit signed integer.</summary>
    Int32 = 6,
    /// <summary>64-bit signed integer.</summary>
    Int64 = 7,
    /// <summary>Boolean.</summary>
    Bool = 9,
    /// <summary>16-bit IEEE float.</summary>
    Float16 = 10,
    /// <summary>64-bit IEEE float.</summary>
    Double = 11,
}

/// <summary>One node attribute; only the value fields the importer uses are kept.</summary>
internal sealed record OnnxAttribute(string Name, float? Float, long? Int, long[] Ints, OnnxTensor? Tensor);

/// <summary>One graph node.</summary>
internal sealed record OnnxNode(string Name, string OpType, string[] Inputs, string[] Outputs, OnnxAttribute[] Attributes)
{
    /// <summary>The attribute with this name, or null.</summary>
    public OnnxAttribute? Attribute(string name) => Attributes.FirstOrDefault(a => a.Name == name);
}

/// <summary>The main graph of an ONNX model.</summary>
internal sealed class OnnxGraph
{
    /// <summary>Nodes in file (topological) order.</summary>
    public List<OnnxNode> Nodes { get; } = [];
    /// <summary>Initializers by name, in file order.</summary>
    public Dictionary<string, OnnxTensor> Initializers { get; } = [];
    /// <summary>Names of the graph inputs.</summary>
    public List<string> Inputs { get; } = [];
    /// <summary>Names of the graph outputs.</summary>
    public List<string> Outputs { get; } = [];

    private Dictionary<string, OnnxNode>? _producers;
    private ILookup<string, OnnxNode>? _consumers;

    /// <summary>The node that outputs <paramref name="value"/>, or null for graph inputs and initializers.</summary>
    public OnnxNode? Producer(string value)
    {
        _producers ??= Nodes.SelectMany(n => n.Outputs.Select(o => (o, n))).GroupBy(p => p.o).ToDictionary(g => g.Key, g => g.First().n);
        return _producers.GetValueOrDefault(value);
    }

    /// <summary>The nodes that take <paramref name="value"/> as an input.</summary>
    public IEnumerable<OnnxNode> Consumers(string value)
    {
        _consumers ??= Nodes.SelectMany(n => n.Inputs.Distinct().Select(i => (i, n))).ToLookup(p => p.i, p => p.n);
        return _consumers[value];
    }

    /// <summary>The constant value of <paramref name="value"/>: an initializer or a Constant node's tensor, else null.</summary>
    public OnnxTensor? Constant(string value) =>
        Initializers.GetValueOrDefault(value) ??
        (Producer(value) is { OpType: "Constant" } node ? node.Attribute("value")?.Tensor : null);

    /// <summary>Reads the graph of the ONNX model at <paramref name="path"/>; errors name the file.</summary>
    public static OnnxGraph Load(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: file not found.");
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 20);
        var input = new CodedInputStream(file, leaveOpen: true);
        OnnxGraph? graph = null;
        try
        {
            uint tag;
            while ((tag = input.ReadTag()) != 0)
            {
                if (tag == Tag(7, WireFormat.WireType.LengthDelimited)) graph = ReadGraph(path, input, End(input));
                else input.SkipLastField();
            }
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or EndOfStreamException)
        {
            throw new SharpTuneException($"{path}: not a readable ONNX model (the protobuf data is truncated or malformed at byte {input.Position}: {e.Message}).", e);
        }
        if (graph is null)
            throw new SharpTuneException($"{path}: not an ONNX model (no ModelProto.graph found in {file.Length} bytes).");
        return graph;
    }

    // ReadTag answers 0 at the end of the file; inside a message that means the file was cut short.
    private static uint NextTag(CodedInputStream input)
    {
        uint tag = input.ReadTag();
        return tag != 0 ? tag : throw new EndOfStreamException("the file ends inside a message");
    }

    private static uint Tag(int field, WireFormat.WireType type) => WireFormat.MakeTag(field, type);

    // The end position of the length-delimited field whose tag was just read.
    private static long End(CodedInputStream input)
    {
        int length = input.ReadLength();
        return input.Position + length;
    }

    private static OnnxGraph ReadGraph(string path, CodedInputStream input, long end)
    {
        var graph = new OnnxGraph();
        while (input.Position < end)
        {
            uint tag = NextTag(input);
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1 when WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited:
                    graph.Nodes.Add(ReadNode(path, input, End(input)));
                    break;
                case 5 when WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited:
                    var tensor = ReadTensor(path, input, End(input));
                    if (!graph.Initializers.TryAdd(tensor.Name, tensor))
                        throw new SharpTuneException($"{path}: initializer '{tensor.Name}' appears twice in the graph.");
                    break;
                case 11 or 12 when WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited:
                    (WireFormat.GetTagFieldNumber(tag) == 11 ? graph.Inputs : graph.Outputs).Add(ReadValueInfoName(input, End(input)));
                    break;
                default:
                    input.SkipLastField();
                    break;
            }
        }
        return graph;
    }

    private static string ReadValueInfoName(CodedInputStream input, long end)
    {
        string name = "";
        while (input.Position < end)
        {
            uint tag = NextTag(input);
            if (tag == Tag(1, WireFormat.WireType.LengthDelimited)) name = input.ReadString();
            else input.SkipLastField();
        }
        return name;
    }

    private static OnnxNode ReadNode(string path, CodedInputStream input, long end)
    {
        List<string> inputs = [], outputs = [];
        List<OnnxAttribute> attributes = [];
        string name = "", opType = "";
        while (input.Position < end)
        {
            uint tag = NextTag(input);
            if (WireFormat.GetTagWireType(tag) != WireFormat.WireType.LengthDelimited) { input.SkipLastField(); continue; }
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: inputs.Add(input.ReadString()); break;
                case 2: outputs.Add(input.ReadString()); break;
                case 3: name = input.ReadString(); break;
                case 4: opType = input.ReadString(); break;
                case 5: attributes.Add(ReadAttribute(path, input, End(input))); break;
                default: input.SkipLastField(); break;
            }
        }
        return new OnnxNode(name, opType, [.. inputs], [.. outputs], [.. attributes]);
    }

    private static OnnxAttribute ReadAttribute(string path, CodedInputStream input, long end)
    {
        string name = "";
        float? f = null;
        long? i = null;
        List<long> ints = [];
        OnnxTensor? t = null;
        while (input.Position < end)
        {
            uint tag = NextTag(input);
            var wire = WireFormat.GetTagWireType(tag);
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1 when wire == WireFormat.WireType.LengthDelimited: name = input.ReadString(); break;
                case 2 when wire == WireFormat.WireType.Fixed32: f = input.ReadFloat(); break;
                case 3 when wire == WireFormat.WireType.Varint: i = input.ReadInt64(); break;
                case 5 when wire == WireFormat.WireType.LengthDelimited: t = ReadTensor(path, input, End(input)); break;
                case 8: ReadRepeatedInt64(input, wire, ints); break;
                default: input.SkipLastField(); break;
            }
        }
        return new OnnxAttribute(name, f, i, [.. ints], t);
    }

    private static OnnxTensor ReadTensor(string path, CodedInputStream input, long end)
    {
        string name = "";
        var dataType = OnnxDataType.Undefined;
        List<long> dims = [], int64Data = [];
        List<float> floatData = [];
        List<int> int32Data = [];
        byte[]? raw = null;
        bool external = false;
        while (input.Position < end)
        {
            uint tag = NextTag(input);
            var wire = WireFormat.GetTagWireType(tag);
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: ReadRepeatedInt64(input, wire, dims); break;
                case 2 when wire == WireFormat.WireType.Varint: dataType = (OnnxDataType)input.ReadInt32(); break;
                case 4: ReadRepeatedFloat(input, wire, floatData); break;
                case 5: ReadRepeatedInt32(input, wire, int32Data); break;
                case 7: ReadRepeatedInt64(input, wire, int64Data); break;
                case 8 when wire == WireFormat.WireType.LengthDelimited: name = input.ReadString(); break;
                case 9 when wire == WireFormat.WireType.LengthDelimited: raw = input.ReadBytes().ToByteArray(); break;
                case 13 when wire == WireFormat.WireType.LengthDelimited: external = true; input.SkipLastField(); break;
                case 14 when wire == WireFormat.WireType.Varint: external |= input.ReadInt32() == 1; break;
                default: input.SkipLastField(); break;
            }
        }
        if (external)
            throw new SharpTuneException($"{path}: tensor '{name}' keeps its data in an external file (ONNX external data), which the importer does not read; re-export the model with the weights inside the .onnx file.");
        if (dataType is not (OnnxDataType.Float or OnnxDataType.Int64 or OnnxDataType.Int32 or OnnxDataType.Double))
        {
            // Tensors of other types (bool masks, strings…) are kept without data; the importer never maps them.
            return new OnnxTensor(name, dataType, [.. dims], []);
        }
        byte[] data = raw ?? dataType switch
        {
            OnnxDataType.Float => MemoryMarshal.AsBytes(CollectionsMarshal.AsSpan(floatData)).ToArray(),
            OnnxDataType.Int64 => MemoryMarshal.AsBytes(CollectionsMarshal.AsSpan(int64Data)).ToArray(),
            OnnxDataType.Int32 => MemoryMarshal.AsBytes(CollectionsMarshal.AsSpan(int32Data)).ToArray(),
            _ => [],
        };
        var tensor = new OnnxTensor(name, dataType, [.. dims], data);
        int elementSize = dataType is OnnxDataType.Float or OnnxDataType.Int32 ? 4 : 8;
        if (tensor.ElementCount * elementSize != data.Length)
            throw new SharpTuneException($"{path}: tensor '{name}' has shape {tensor.ShapeText} ({tensor.ElementCount} {dataType} elements) but {data.Length} bytes of data.");
        return tensor;
    }

    // Repeated scalar fields may be packed (one length-delimited run) or not (one tag per value).
    private static void ReadRepeatedInt64(CodedInputStream input, WireFormat.WireType wire, List<long> into)
    {
        if (wire == WireFormat.WireType.Varint) { into.Add(input.ReadInt64()); return; }
        if (wire != WireFormat.WireType.LengthDelimited) { input.SkipLastField(); return; }
        long end = End(input);
        while (input.Position < end) into.Add(input.ReadInt64());
    }

    private static void ReadRepeatedInt32(CodedInputStream input, WireFormat.WireType wire, List<int> into)
    {
        if (wire == WireFormat.WireType.Varint) { into.Add(input.ReadInt32()); return; }
        if (wire != WireFormat.WireType.LengthDelimited) { input.SkipLastField(); return; }
        long end = End(input);
        while (input.Position < end) into.Add(input.ReadInt32());
    }

    private static void ReadRepeatedFloat(CodedInputStream input, WireFormat.WireType wire, List<float> into)
    {
        if (wire == WireFormat.WireType.Fixed32) { into.Add(input.ReadFloat()); return; }
        if (wire != WireFormat.WireType.LengthDelimited) { input.SkipLastField(); return; }
        long end = End(input);
        while (input.Position < end) into.Add(input.ReadFloat());
    }
}

/// <summary>One dimension of a graph input or output: a fixed size, or the name of a dynamic axis (<c>batch</c>).</summary>
internal readonly record struct OnnxDim(long? Value, string? Param)
{
    public static implicit operator OnnxDim(long value) => new(value, null);
    public static implicit operator OnnxDim(string param) => new(null, param);
}

/// <summary>A graph input or output (ValueInfoProto): its name, element type and shape.</summary>
internal sealed record OnnxValueInfo(string Name, OnnxDataType ElementType, IReadOnlyList<OnnxDim> Dims);

/// <summary>Everything <see cref="OnnxModelWriter"/> writes: one graph in the default domain at one opset.</summary>
internal sealed record OnnxModelContents(
    int Opset, string Producer, string ProducerVersion, string GraphName,
    IReadOnlyList<OnnxNode> Nodes, IReadOnlyList<OnnxTensor> Initializers,
    IReadOnlyList<OnnxValueInfo> Inputs, IReadOnlyList<OnnxValueInfo> Outputs);

/// <summary>
/// Writes a ModelProto with the field numbers <see cref="OnnxGraph.Load"/> reads. Each nested message is serialised
/// into its own buffer first, since protobuf puts a message's length before it.
/// </summary>
internal static class OnnxModelWriter
{
    /// <summary>ONNX IR version 8: the one that goes with opset 17 (onnx 1.12).</summary>
    public const long IrVersion = 8;

    /// <summary>Writes <paramref name="model"/> to <paramref name="stream"/>.</summary>
    public static void Write(Stream stream, OnnxModelContents model)
    {
        var output = new CodedOutputStream(stream, leaveOpen: true);
        output.WriteTag(1, WireFormat.WireType.Varint);
        output.WriteInt64(IrVersion);
        WriteString(output, 2, model.Producer);
        WriteString(output, 3, model.ProducerVersion);
        Message(output, 7, graph => WriteGraph(graph, model));
        Message(output, 8, opset =>
        {
            WriteString(opset, 1, "");
            opset.WriteTag(2, WireFormat.WireType.Varint);
            opset.WriteInt64(model.Opset);
        });
        output.Flush();
    }

    private static void WriteGraph(CodedOutputStream output, OnnxModelContents model)
    {
        foreach (var node in model.Nodes) Message(output, 1, n => WriteNode(n, node));
        WriteString(output, 2, model.GraphName);
        foreach (var tensor in model.Initializers) Message(output, 5, t => WriteTensor(t, tensor));
        foreach (var input in model.Inputs) Message(output, 11, v => WriteValueInfo(v, input));
        foreach (var graphOutput in model.Outputs) Message(output, 12, v => WriteValueInfo(v, graphOutput));
    }

    private static void WriteNode(CodedOutputStream output, OnnxNode node)
    {
        foreach (string input in node.Inputs) WriteString(output, 1, input);
        foreach (string value in node.Outputs) WriteString(output, 2, value);
        WriteString(output, 3, node.Name);
        WriteString(output, 4, node.OpType);
        foreach (var attribute in node.Attributes) Message(output, 5, a => WriteAttribute(a, attribute));
    }

    // AttributeProto.type (field 20) must be set: FLOAT 1, INT 2, TENSOR 4, INTS 7.
    private static void WriteAttribute(CodedOutputStream output, OnnxAttribute attribute)
    {
        WriteString(output, 1, attribute.Name);
        int type;
        if (attribute.Tensor is { } tensor)
        {
            Message(output, 5, t => WriteTensor(t, tensor));
            type = 4;
        }
        else if (attribute.Float is { } f)
        {
            output.WriteTag(2, WireFormat.WireType.Fixed32);
            output.WriteFloat(f);
            type = 1;
        }
        else if (attribute.Int is { } i)
        {
            output.WriteTag(3, WireFormat.WireType.Varint);
            output.WriteInt64(i);
            type = 2;
        }
        else
        {
            foreach (long value in attribute.Ints)
            {
                output.WriteTag(8, WireFormat.WireType.Varint);
                output.WriteInt64(value);
            }
            type = 7;
        }
        output.WriteTag(20, WireFormat.WireType.Varint);
        output.WriteInt32(type);
    }

    // Data as raw_data (little-endian, as the reader expects).
    private static void WriteTensor(CodedOutputStream output, OnnxTensor tensor)
    {
        foreach (long dim in tensor.Dims)
        {
            output.WriteTag(1, WireFormat.WireType.Varint);
            output.WriteInt64(dim);
        }
        output.WriteTag(2, WireFormat.WireType.Varint);
        output.WriteInt32((int)tensor.DataType);
        WriteString(output, 8, tensor.Name);
        output.WriteTag(9, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(UnsafeByteOperations.UnsafeWrap(tensor.Data));
    }

    // ValueInfoProto { name = 1, type = 2: TypeProto { tensor_type = 1: { elem_type = 1, shape = 2: { dim = 1: { dim_value = 1 | dim_param = 2 } } } } }
    private static void WriteValueInfo(CodedOutputStream output, OnnxValueInfo info)
    {
        WriteString(output, 1, info.Name);
        Message(output, 2, type => Message(type, 1, tensorType =>
        {
            tensorType.WriteTag(1, WireFormat.WireType.Varint);
            tensorType.WriteInt32((int)info.ElementType);
            Message(tensorType, 2, shape =>
            {
                foreach (var dim in info.Dims)
                    Message(shape, 1, d =>
                    {
                        if (dim.Value is { } value)
                        {
                            d.WriteTag(1, WireFormat.WireType.Varint);
                            d.WriteInt64(value);
                        }
                        else WriteString(d, 2, dim.Param!);
                    });
            });
        }));
    }

    private static void WriteString(CodedOutputStream output, int field, string value)
    {
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteString(value);
    }

    private static void Message(CodedOutputStream output, int field, Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        using (var inner = new CodedOutputStream(buffer, leaveOpen: true)) write(inner);
        if (buffer.Length > int.MaxValue)
            throw new SharpTuneException($"ONNX message (field {field}) is {buffer.Length} bytes, over protobuf's 2 GB limit; the model is too large for one .onnx file.");
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(UnsafeByteOperations.UnsafeWrap(buffer.GetBuffer().AsMemory(0, (int)buffer.Length)));
    }
}
