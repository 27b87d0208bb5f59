using System.Buffers.Binary;
using System.Text;
using static TorchSharp.torch;

namespace SharpTune.Checkpoints;

/// <summary>A global a pickle named (<c>GLOBAL</c>/<c>STACK_GLOBAL</c>); only allow-listed ones are ever created.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => $"{Module}.{Name}";
}

/// <summary>A Python tuple.</summary>
internal sealed record PickleTuple(IReadOnlyList<object?> Items);

/// <summary>A Python dict or OrderedDict, in insertion order; <see cref="State"/> is what BUILD set (e.g. a state dict's <c>_metadata</c>), unused.</summary>
internal sealed class PickleDict
{
    public List<KeyValuePair<object, object?>> Items { get; } = [];
    public HashSet<string> StringKeys { get; } = new(StringComparer.Ordinal);
    public object? State { get; set; }
}

/// <summary>A storage a pickle referred to through <c>persistent_load</c>: the zip record <c>data/&lt;Key&gt;</c>.</summary>
internal sealed record StorageRef(string Key, string TypeName, ScalarType DType, int ElementSize, long Numel);

/// <summary>What <c>torch._utils._rebuild_tensor_v2</c> would build: a strided view of a storage.</summary>
internal sealed record TensorRef(StorageRef Storage, long Offset, long[] Size, long[] Stride);

/// <summary>
/// A pickle interpreter for PyTorch checkpoints that runs no code: it knows the opcodes <c>torch.save</c> writes
/// (protocol 2, plus the protocol 3–5 forms of the same values) and builds plain values — strings, integers, floats,
/// booleans, None, tuples, lists, dicts — and, for the allow-listed globals only, storages and tensor descriptions.
/// Any other global (<c>posix.system</c>, <c>builtins.eval</c>…) is refused when it is named, before anything could
/// call it. Every length is checked against the bytes left before it is allocated, and the number of values is
/// bounded, so a hostile pickle costs at most a small multiple of its size.
/// </summary>
internal sealed class RestrictedUnpickler
{
    /// <summary>More values than this is not a state dict (a 1,000-layer model has about 250,000).</summary>
    public const int MaxValues = 4_000_000;

    private static readonly Dictionary<string, (ScalarType DType, int Size)> StorageTypes = new(StringComparer.Ordinal)
    {
        ["torch.FloatStorage"] = (ScalarType.Float32, 4), ["torch.DoubleStorage"] = (ScalarType.Float64, 8),
        ["torch.HalfStorage"] = (ScalarType.Float16, 2), ["torch.BFloat16Storage"] = (ScalarType.BFloat16, 2),
        ["torch.LongStorage"] = (ScalarType.Int64, 8), ["torch.IntStorage"] = (ScalarType.Int32, 4),
        ["torch.ShortStorage"] = (ScalarType.Int16, 2), ["torch.CharStorage"] = (ScalarType.Int8, 1),
        ["torch.ByteStorage"] = (ScalarType.Byte, 1), ["torch.BoolStorage"] = (ScalarType.Bool, 1),
    };

    private const string OrderedDict = "collections.OrderedDict";
    private const string RebuildTensorV2 = "torch._utils._rebuild_tensor_v2";
    private const string RebuildTensor = "torch._utils._rebuild_tensor";
    private const string RebuildParameter = "torch._utils._rebuild_parameter";
    private const string RebuildParameterWithState = "torch._utils._rebuild_parameter_with_state";

    /// <summary>Every global a checkpoint may name: containers, the tensor rebuild functions and the storage types.</summary>
    public static IReadOnlyCollection<string> AllowedGlobals { get; } =
        [OrderedDict, RebuildTensorV2, RebuildTensor, RebuildParameter, RebuildParameterWithState, .. StorageTypes.Keys];

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly string _source;
    private readonly byte[] _data;
    private readonly Func<StorageRef, StorageRef> _persistentLoad;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private int _position;
    private int _opcodeAt;
    private int _values;

    /// <param name="source">The checkpoint file, for messages.</param>
    /// <param name="data">The pickle bytes.</param>
    /// <param name="persistentLoad">Checks a storage reference against the archive (and may return a shared one).</param>
    public RestrictedUnpickler(string source, byte[] data, Func<StorageRef, StorageRef> persistentLoad)
    {
        _source = source;
        _data = data;
        _persistentLoad = persistentLoad;
    }

    /// <summary>The name <c>GLOBAL</c> would look up, or a refusal naming it.</summary>
    private PickleGlobal Global(string module, string name)
    {
        var global = new PickleGlobal(module, name);
        if (!AllowedGlobals.Contains(global.FullName))
            throw new SharpTuneException($"{_source}: refuses to load global '{global.FullName}' (data.pkl byte {_opcodeAt}): only tensors, storages and plain containers are allowed; no code runs.");
        return global;
    }

    /// <summary>Interprets the pickle up to STOP and returns its value.</summary>
    public object? Load()
    {
        while (true)
        {
            _opcodeAt = _position;
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    if (ReadByte() is var proto && proto > 5) throw Error($"pickle protocol {proto} is not supported (0–5)");
                    break;
                case 0x95: // FRAME: a length prefix for buffering; the bytes follow inline.
                    if (ReadUInt64() > (ulong)(_data.Length - _position)) throw Error("FRAME runs past the end of the pickle");
                    break;
                case (byte)'}': Push(new PickleDict()); break; // EMPTY_DICT
                case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
                case (byte)')': Push(new PickleTuple([])); break; // EMPTY_TUPLE
                case (byte)'(': _marks.Push(_stack.Count); break; // MARK
                case (byte)'t': Push(new PickleTuple(PopMark())); break; // TUPLE
                case 0x85: Push(new PickleTuple(PopN(1))); break; // TUPLE1
                case 0x86: Push(new PickleTuple(PopN(2))); break; // TUPLE2
                case 0x87: Push(new PickleTuple(PopN(3))); break; // TUPLE3
                case (byte)'K': Push((long)ReadByte()); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
                case 0x8a: Push(ReadLong1()); break; // LONG1
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'N': Push(null); break; // NONE
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT is big-endian
                case (byte)'X': Push(ReadString(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // BINUNICODE
                case 0x8c: Push(ReadString(ReadByte())); break; // SHORT_BINUNICODE
                case 0x8d: Push(ReadString(ReadUInt64())); break; // BINUNICODE8
                case (byte)'B': Push(ReadBytes(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // BINBYTES
                case (byte)'C': Push(ReadBytes(ReadByte())); break; // SHORT_BINBYTES
                case 0x8e: Push(ReadBytes(ReadUInt64())); break; // BINBYTES8
                case (byte)'q': Memoize(ReadByte()); break; // BINPUT
                case (byte)'r': Memoize(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))); break; // LONG_BINPUT
                case 0x94: Memoize(_memo.Count); break; // MEMOIZE
                case (byte)'h': Push(Recall(ReadByte())); break; // BINGET
                case (byte)'j': Push(Recall(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // LONG_BINGET
                case (byte)'c': // GLOBAL "module\nname\n"
                {
                    string module = ReadLine(), name = ReadLine();
                    Push(Global(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    object? name = Pop(), module = Pop();
                    if (module is not string m || name is not string n) throw Error("STACK_GLOBAL needs two strings");
                    Push(Global(m, n));
                    break;
                }
                case (byte)'R': // REDUCE
                {
                    object? args = Pop(), callable = Pop();
                    if (args is not PickleTuple tuple) throw Error($"REDUCE needs an argument tuple, got {Describe(args)}");
                    if (callable is not PickleGlobal global) throw Error($"REDUCE needs a global to call, got {Describe(callable)}");
                    Push(Call(global, tuple.Items));
                    break;
                }
                case (byte)'b': // BUILD
                {
                    object? state = Pop();
                    if (Peek() is not PickleDict dict)
                        throw Error($"BUILD sets the state of a {Describe(Peek())}; only a dict's attributes (a state dict's _metadata) are accepted");
                    dict.State = state;
                    break;
                }
                case (byte)'s': // SETITEM
                {
                    object? value = Pop(), key = Pop();
                    SetItem(Peek(), key, value);
                    break;
                }
                case (byte)'u': // SETITEMS
                {
                    var items = PopMark();
                    if (items.Count % 2 != 0) throw Error("SETITEMS needs key/value pairs");
                    object? target = Peek();
                    for (int i = 0; i < items.Count; i += 2) SetItem(target, items[i], items[i + 1]);
                    break;
                }
                case (byte)'a': // APPEND
                {
                    object? value = Pop();
                    AsList(Peek()).Add(value);
                    break;
                }
                case (byte)'e': // APPENDS
                {
                    var items = PopMark();
                    AsList(Peek()).AddRange(items);
                    break;
                }
                case (byte)'Q': // BINPERSID
                    Push(PersistentLoad(Pop()));
                    break;
                case (byte)'0': Pop(); break; // POP
                case (byte)'1': PopMark(); break; // POP_MARK
                case (byte)'2': Push(Peek()); break; // DUP
                case (byte)'.': // STOP
                    return Pop();
                default:
                    throw Error($"opcode 0x{op:x2} ('{(op is >= 0x20 and < 0x7f ? (char)op : '?')}') is not one torch.save writes for tensors; refusing it");
            }
        }
    }

    // ---- the allow-listed calls ---------------------------------------------------------------------------------

    private object Call(PickleGlobal global, IReadOnlyList<object?> args)
    {
        switch (global.FullName)
        {
            case OrderedDict:
                if (args.Count != 0) throw Error("collections.OrderedDict is only accepted without arguments (as torch.save writes it)");
                return new PickleDict();
            case RebuildTensorV2 or RebuildTensor:
            {
                // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
                bool v2 = global.Name == "_rebuild_tensor_v2";
                if (v2 ? args.Count is not (6 or 7) : args.Count != 4)
                    throw Error($"{global.FullName} takes {(v2 ? "6 or 7" : "4")} arguments, got {args.Count}");
                if (args[0] is not StorageRef storage) throw Error($"{global.FullName}: argument 0 must be a storage, got {Describe(args[0])}");
                if (args[1] is not long offset) throw Error($"{global.FullName}: storage_offset must be an integer, got {Describe(args[1])}");
                long[] size = Integers(args[2], global.FullName, "size"), stride = Integers(args[3], global.FullName, "stride");
                if (v2 && args[4] is not bool) throw Error($"{global.FullName}: requires_grad must be a bool, got {Describe(args[4])}");
                if (v2 && !(args[5] is null || args[5] is PickleDict { Items.Count: 0 }))
                    throw Error($"{global.FullName}: backward_hooks must be empty (hooks are code)");
                return new TensorRef(storage, offset, size, stride);
            }
            case RebuildParameter or RebuildParameterWithState:
            {
                // (data, requires_grad, backward_hooks[, state]): the tensor is the parameter's data.
                int expected = global.Name == "_rebuild_parameter" ? 3 : 4;
                if (args.Count != expected) throw Error($"{global.FullName} takes {expected} arguments, got {args.Count}");
                if (args[0] is not TensorRef tensor) throw Error($"{global.FullName}: argument 0 must be a tensor, got {Describe(args[0])}");
                if (!(args[2] is null || args[2] is PickleDict { Items.Count: 0 }))
                    throw Error($"{global.FullName}: backward_hooks must be empty (hooks are code)");
                return tensor;
            }
            default:
                throw Error($"{global.FullName} is a type, not something a checkpoint calls");
        }
    }

    private StorageRef PersistentLoad(object? pid)
    {
        // torch.save's persistent id: ('storage', torch.FloatStorage, key, location, numel)
        if (pid is not PickleTuple { Items.Count: 5 } tuple || tuple.Items[0] is not "storage")
            throw Error($"persistent id must be ('storage', type, key, location, numel), got {Describe(pid)}");
        var items = tuple.Items;
        if (items[1] is not PickleGlobal type || !StorageTypes.TryGetValue(type.FullName, out var kind))
            throw Error($"persistent id names {Describe(items[1])} where a storage type (torch.FloatStorage…) belongs");
        if (items[2] is not string key || key.Length is 0 or > 64 || !key.All(char.IsAsciiLetterOrDigit))
            throw Error($"storage key must be a short alphanumeric string (torch writes 0, 1, …), got {Describe(items[2])}");
        if (items[3] is not string) throw Error($"storage location must be a string, got {Describe(items[3])}");
        if (items[4] is not long numel || numel < 0) throw Error($"storage size must be a non-negative integer, got {Describe(items[4])}");
        return _persistentLoad(new StorageRef(key, type.FullName, kind.DType, kind.Size, numel));
    }

    private long[] Integers(object? value, string function, string what)
    {
        if (value is not PickleTuple tuple) throw Error($"{function}: {what} must be a tuple of integers, got {Describe(value)}");
        var result = new long[tuple.Items.Count];
        for (int i = 0; i < result.Length; i++)
            result[i] = tuple.Items[i] as long? ?? throw Error($"{function}: {what}[{i}] must be an integer, got {Describe(tuple.Items[i])}");
        return result;
    }

    private void SetItem(object? target, object? key, object? value)
    {
        if (target is not PickleDict dict) throw Error($"SETITEM(S) on a {Describe(target)}, not a dict");
        if (key is not (string or long or bool or null or PickleTuple)) throw Error($"dict key of type {Describe(key)} is not accepted");
        // Python would keep the last value silently; a state dict never has a key twice, so a second one is an error.
        if (key is string s && !dict.StringKeys.Add(s)) throw Error($"dict key '{s}' is set twice");
        dict.Items.Add(new(key ?? "None", value));
    }

    private List<object?> AsList(object? target) =>
        target as List<object?> ?? throw Error($"APPEND(S) on a {Describe(target)}, not a list");

    // ---- stack, marks and memo ---------------------------------------------------------------------------------

    private void Push(object? value)
    {
        if (++_values > MaxValues) throw Error($"more than {MaxValues:N0} values; not a checkpoint");
        _stack.Add(value);
    }

    private int Floor => _marks.Count > 0 ? _marks.Peek() : 0;

    private object? Pop()
    {
        if (_stack.Count <= Floor) throw Error("stack underflow (the pickle is truncated or corrupt)");
        object? value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object? Peek() =>
        _stack.Count > Floor ? _stack[^1] : throw Error("stack underflow (the pickle is truncated or corrupt)");

    private object?[] PopN(int count)
    {
        if (_stack.Count - Floor < count) throw Error("stack underflow (the pickle is truncated or corrupt)");
        var items = _stack.GetRange(_stack.Count - count, count).ToArray();
        _stack.RemoveRange(_stack.Count - count, count);
        return items;
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Error("no MARK to pop to (the pickle is corrupt)");
        int mark = _marks.Pop();
        var items = _stack.GetRange(mark, _stack.Count - mark);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private void Memoize(long index)
    {
        if (_memo.Count >= MaxValues) throw Error($"more than {MaxValues:N0} memo entries; not a checkpoint");
        _memo[index] = Peek();
    }

    private object? Recall(long index) =>
        _memo.TryGetValue(index, out var value) ? value : throw Error($"memo entry {index} is read before it is written");

    // ---- reading -------------------------------------------------------------------------------------------------

    private byte ReadByte() =>
        _position < _data.Length ? _data[_position++] : throw Error("the pickle ends before STOP (truncated)");

    private ReadOnlySpan<byte> Take(ulong count)
    {
        if (count > (ulong)(_data.Length - _position))
            throw Error($"a length of {count} bytes runs past the end of the pickle ({_data.Length - _position} left)");
        var span = _data.AsSpan(_position, (int)count);
        _position += (int)count;
        return span;
    }

    private ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    private string ReadString(ulong length)
    {
        var bytes = Take(length);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Error("a string is not valid UTF-8");
        }
    }

    private byte[] ReadBytes(ulong length) => Take(length).ToArray();

    private string ReadLine()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _position);
        if (end < 0) throw Error("GLOBAL's name has no end of line (truncated)");
        string line = ReadString((ulong)(end - _position));
        _position = end + 1;
        return line;
    }

    private long ReadLong1()
    {
        int length = ReadByte();
        if (length > 8) throw Error($"an integer of {length} bytes is wider than 64 bits");
        var bytes = Take((ulong)length);
        if (length == 0) return 0;
        // Little-endian two's complement: sign-extend from the top byte.
        long value = (sbyte)bytes[length - 1];
        for (int i = length - 2; i >= 0; i--) value = (value << 8) | bytes[i];
        return value;
    }

    private SharpTuneException Error(string message) => new($"{_source}: data.pkl byte {_opcodeAt}: {message}.");

    /// <summary>A short description of a value for messages.</summary>
    internal static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"the string '{(s.Length > 40 ? s[..40] + "…" : s)}'",
        long l => $"the integer {l}",
        bool b => b ? "True" : "False",
        double => "a float",
        byte[] => "bytes",
        PickleTuple t => $"a tuple of {t.Items.Count}",
        List<object?> => "a list",
        PickleDict => "a dict",
        PickleGlobal g => $"the global '{g.FullName}'",
        StorageRef => "a storage",
        TensorRef => "a tensor",
        _ => value.GetType().Name,
    };
}
