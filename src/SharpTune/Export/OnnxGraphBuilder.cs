using System.Runtime.InteropServices;
using SharpTune.Checkpoints;
using SharpTune.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Export;

/// <summary>How the exported graph stores its weights.</summary>
public enum OnnxWeightFormat
{
    /// <summary>float32, as the model has them: ONNX Runtime's logits equal SharpTune's within 1e-4.</summary>
    Float32,
    /// <summary>float16 initializers, cast to float32 where they are used: half the file, computation stays float32.</summary>
    Float16,
    /// <summary>
    /// int8 weights of every Linear layer (per output column, symmetric), with the activations quantised to uint8 at
    /// run time (DynamicQuantizeLinear → MatMulInteger), as ONNX Runtime's <c>quantize_dynamic</c> does; embeddings and
    /// LayerNorms stay float32.
    /// </summary>
    Int8,
}

/// <summary>The encoder's graph outputs, as <see cref="Models.EncoderOutput"/> has them: value names in the graph.</summary>
/// <param name="LastHiddenState">[batch, sequence, hidden].</param>
/// <param name="PooledOutput">[batch, hidden], or null when the encoder has no pooler.</param>
public sealed record OnnxEncoderOutput(string LastHiddenState, string? PooledOutput);

/// <summary>
/// Builds one ONNX graph (opset 17) node by node: each method adds the nodes of one operation and returns the name of
/// its output value, so that an architecture writes its graph in the order of its <c>forward</c>
/// (<c>ExportOnnx</c> next to each module). Weights come from the modules themselves (a LoRA adapter is merged on
/// the way) and are named after their checkpoint keys. The graph inputs are HF's: <see cref="InputIds"/>,
/// <see cref="AttentionMask"/> and, when an architecture asks for it, <see cref="TokenTypeIds"/>; the batch and
/// sequence axes are dynamic.
/// </summary>
public sealed class OnnxGraphBuilder
{
    /// <summary>The dynamic batch axis.</summary>
    public const string BatchAxis = "batch";
    /// <summary>The dynamic sequence axis.</summary>
    public const string SequenceAxis = "sequence";

    private readonly List<OnnxNode> nodes = [];
    private readonly List<OnnxTensor> initializers = [];
    private readonly List<OnnxValueInfo> inputs = [];
    private readonly List<OnnxValueInfo> outputs = [];
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Func<string, string>> linears = new(StringComparer.Ordinal);
    private string? attentionBias;
    private int counter;

    internal OnnxGraphBuilder(OnnxWeightFormat weights)
    {
        Weights = weights;
        InputIds = DeclareInput("input_ids");
        AttentionMask = DeclareInput("attention_mask");
    }

    /// <summary>How weights are stored.</summary>
    public OnnxWeightFormat Weights { get; }

    /// <summary>The graph input <c>input_ids</c>: int64 [batch, sequence].</summary>
    public string InputIds { get; }

    /// <summary>The graph input <c>attention_mask</c>: int64 [batch, sequence], 1 for a token, 0 for padding.</summary>
    public string AttentionMask { get; }

    /// <summary>The graph input <c>token_type_ids</c>: int64 [batch, sequence]; declared on first use, so only architectures that read it have it.</summary>
    public string TokenTypeIds => inputs.Any(i => i.Name == "token_type_ids") ? "token_type_ids" : DeclareInput("token_type_ids");

    /// <summary>
    /// The additive attention mask [batch, 1, 1, sequence]: 0 for a token, float32's minimum for padding (HF's
    /// <c>finfo.min</c>), broadcast over heads and queries. Built once.
    /// </summary>
    public string AttentionBias => attentionBias ??= BuildAttentionBias();

    private string DeclareInput(string name)
    {
        inputs.Add(new OnnxValueInfo(name, OnnxDataType.Int64, [BatchAxis, SequenceAxis]));
        names.Add(name);
        return name;
    }

    private string BuildAttentionBias()
    {
        string mask = Cast(AttentionMask, OnnxDataType.Float);
        string padding = Sub(Scalar(1f), mask);
        string bias = Mul(padding, Scalar(float.MinValue));
        return Unsqueeze(bias, [1, 2], "attention_bias");
    }

    /// <summary>Makes <paramref name="value"/> the graph output <paramref name="name"/> (float32, with these dimensions).</summary>
    internal void Output(string value, string name, IReadOnlyList<OnnxDim> dims)
    {
        Node("Identity", [value], name);
        outputs.Add(new OnnxValueInfo(name, OnnxDataType.Float, dims));
    }

    internal OnnxModelContents Build(string graphName) =>
        new(OnnxExporter.Opset, "SharpTune", typeof(OnnxGraphBuilder).Assembly.GetName().Version?.ToString() ?? "", graphName,
            nodes, initializers, inputs, outputs);

    // ---- modules -------------------------------------------------------------------------------------------------

    /// <summary>
    /// x · Wᵀ + b for a Linear layer (or a LoRA-wrapped one, merged: W + alpha/r · B·A) whose checkpoint key is
    /// <paramref name="key"/>. The weight is stored transposed, [in, out], as torch.onnx stores it (and as
    /// <see cref="OnnxImporter"/> reads it back); with <see cref="OnnxWeightFormat.Int8"/> it is quantised.
    /// </summary>
    public string Linear(nn.Module<Tensor, Tensor> layer, string key, string x)
    {
        if (linears.TryGetValue(key + ".weight", out var apply)) return apply(x);
        var (weight, bias) = layer switch
        {
            Linear linear => (linear.weight!.detach().clone(), linear.bias?.detach().clone()),
            LoraLinear lora => (lora.MergedWeight(), lora.BaseLayer.bias?.detach().clone()),
            _ => throw new SharpTuneException($"{key}: a {layer.GetType().Name} has no ONNX export (a Linear or a LoRA-wrapped Linear is expected)."),
        };
        using (weight)
        using (bias)
            return Linear(weight, bias, key + ".weight", key + ".bias", x);
    }

    /// <summary>
    /// x · Wᵀ + b for a weight [out, in] and bias [out] held as tensors (a head's own parameters), named as given. A layer
    /// applied twice (DeBERTa's shared attention keys) stores its weights once.
    /// </summary>
    public string Linear(Tensor weight, Tensor? bias, string weightName, string biasName, string x)
    {
        if (!linears.TryGetValue(weightName, out var apply))
        {
            using var transposed = weight.detach().t().contiguous();
            Func<string, string> product = Weights == OnnxWeightFormat.Int8 ? QuantizedMatMul(transposed, weightName) : FloatMatMul(transposed, weightName);
            string? b = bias is null ? null : Initializer(biasName, bias);
            apply = input => b is null ? product(input) : Add(product(input), b);
            linears[weightName] = apply;
        }
        return apply(x);
    }

    private Func<string, string> FloatMatMul(Tensor transposed, string name)
    {
        string w = Initializer(name, transposed);
        return x => MatMul(x, w);
    }

    /// <summary>LayerNormalization over the last axis with the module's weight and bias (keys <paramref name="key"/>.weight, .bias).</summary>
    public string LayerNorm(LayerNorm layer, string key, string x, double eps)
    {
        string scale = Initializer(key + ".weight", layer.weight!);
        string shift = Initializer(key + ".bias", layer.bias!);
        return Node("LayerNormalization", [x, scale, shift], attributes: [Attr("axis", -1), Attr("epsilon", (float)eps)]);
    }

    /// <summary>Rows of the embedding table (key <paramref name="key"/>.weight) for int64 <paramref name="ids"/>.</summary>
    public string Embedding(Embedding table, string key, string ids) => Gather(Initializer(key + ".weight", table.weight!), ids);

    /// <summary>
    /// The first <c>sequence</c> rows of a position table (key <paramref name="key"/>.weight): [sequence, width], which
    /// broadcasts over the batch (BERT's positions 0 … L-1).
    /// </summary>
    public string LeadingRows(Embedding table, string key, string like)
    {
        string length = Node("Shape", [like], attributes: [Attr("start", 1), Attr("end", 2)]);
        return Node("Slice", [Initializer(key + ".weight", table.weight!), Constant([0L]), length, Constant([0L])]);
    }

    /// <summary>Row <paramref name="row"/> of an embedding table as a constant [width] (a token type every token has).</summary>
    public string Row(Embedding table, string name, long row)
    {
        using var values = table.weight!.detach()[row].clone();
        return Initializer(name, values);
    }

    /// <summary>
    /// Multi-head scaled dot-product attention with <see cref="AttentionBias"/>: q, k, v [batch, sequence, heads·dim]
    /// → softmax(q·kᵀ/√dim + bias)·v, merged back to [batch, sequence, heads·dim].
    /// </summary>
    public string Attention(string q, string k, string v, int heads, int headDim)
    {
        string shape = Constant([0L, 0L, heads, headDim]); // 0: keep that axis (batch, sequence)
        string queries = Transpose(Reshape(q, shape), [0, 2, 1, 3]);
        string keys = Transpose(Reshape(k, shape), [0, 2, 3, 1]);
        string values = Transpose(Reshape(v, shape), [0, 2, 1, 3]);
        string scores = Mul(MatMul(queries, keys), Scalar((float)(1.0 / Math.Sqrt(headDim))));
        string probabilities = Softmax(Add(scores, AttentionBias), -1);
        string context = Transpose(MatMul(probabilities, values), [0, 2, 1, 3]);
        return Reshape(context, Constant([0L, 0L, (long)heads * headDim]));
    }

    /// <summary>The activations of <see cref="Models.Activations"/>, by the same names (opset 17 has no Gelu: gelu is written with Erf).</summary>
    public string Activation(string name, string x) => name switch
    {
        // 0.5 · x · (1 + erf(x / √2))
        "gelu" => Mul(Mul(x, Scalar(0.5f)), Add(Scalar(1f), Node("Erf", [Div(x, Scalar((float)Math.Sqrt(2.0)))]))),
        // 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
        "gelu_new" or "gelu_pytorch_tanh" => Mul(Mul(x, Scalar(0.5f)), Add(Scalar(1f), Node("Tanh", [
            Mul(Scalar((float)Math.Sqrt(2.0 / Math.PI)), Add(x, Mul(Scalar(0.044715f), Mul(x, Mul(x, x))))),
        ]))),
        "relu" => Node("Relu", [x]),
        "silu" or "swish" => Mul(x, Node("Sigmoid", [x])),
        "tanh" => Node("Tanh", [x]),
        _ => throw new SharpTuneException($"hidden_act '{name}' has no ONNX export; supported: {string.Join(", ", Models.Activations.Names)}."),
    };

    /// <summary>The first token's hidden state: [batch, sequence, hidden] → [batch, hidden].</summary>
    public string FirstToken(string hidden) => Gather(hidden, Constant(0L), axis: 1);

    /// <summary>The mean of the real tokens' hidden states (as <see cref="Models.SequenceClassifier.MeanPool"/>): [batch, hidden].</summary>
    public string MeanPool(string hidden)
    {
        string weights = Unsqueeze(Cast(AttentionMask, OnnxDataType.Float), [-1]);
        string summed = Node("ReduceSum", [Mul(hidden, weights), Constant([1L])], attributes: [Attr("keepdims", 0)]);
        string counts = Node("ReduceSum", [weights, Constant([1L])], attributes: [Attr("keepdims", 0)]);
        return Div(summed, Node("Max", [counts, Scalar(1e-9f)]));
    }

    // ---- operators -----------------------------------------------------------------------------------------------

    /// <summary>MatMul.</summary>
    public string MatMul(string a, string b) => Node("MatMul", [a, b]);
    /// <summary>Add (broadcasting).</summary>
    public string Add(string a, string b) => Node("Add", [a, b]);
    /// <summary>Sub (broadcasting).</summary>
    public string Sub(string a, string b) => Node("Sub", [a, b]);
    /// <summary>Mul (broadcasting).</summary>
    public string Mul(string a, string b) => Node("Mul", [a, b]);
    /// <summary>Div (broadcasting).</summary>
    public string Div(string a, string b) => Node("Div", [a, b]);
    /// <summary>Softmax along <paramref name="axis"/>.</summary>
    public string Softmax(string x, int axis) => Node("Softmax", [x], attributes: [Attr("axis", axis)]);
    /// <summary>Gather along <paramref name="axis"/>.</summary>
    public string Gather(string data, string indices, int axis = 0) => Node("Gather", [data, indices], attributes: [Attr("axis", axis)]);
    /// <summary>Reshape to a shape held in <paramref name="shape"/> (0 keeps an axis).</summary>
    public string Reshape(string x, string shape) => Node("Reshape", [x, shape]);
    /// <summary>Transpose by <paramref name="perm"/>.</summary>
    public string Transpose(string x, long[] perm) => Node("Transpose", [x], attributes: [Attr("perm", perm)]);
    /// <summary>Unsqueeze at <paramref name="axes"/>.</summary>
    public string Unsqueeze(string x, long[] axes, string? name = null) => Node("Unsqueeze", [x, Constant(axes)], name);
    /// <summary>Cast to <paramref name="type"/>.</summary>
    public string Cast(string x, OnnxDataType type) => Node("Cast", [x], attributes: [Attr("to", (long)type)]);
    /// <summary>Equal (elementwise, bool).</summary>
    public string Equal(string a, string b) => Node("Equal", [a, b]);
    /// <summary>Not (bool).</summary>
    public string Not(string x) => Node("Not", [x]);
    /// <summary>And (bool).</summary>
    public string And(string a, string b) => Node("And", [a, b]);
    /// <summary>Where: <paramref name="x"/> where <paramref name="condition"/>, else <paramref name="y"/> (broadcasting).</summary>
    public string Where(string condition, string x, string y) => Node("Where", [condition, x, y]);
    /// <summary>The shape of <paramref name="x"/> as an int64 vector.</summary>
    public string Shape(string x) => Node("Shape", [x]);
    /// <summary>The length of axis <paramref name="axis"/> of <paramref name="x"/> as an int64 scalar.</summary>
    public string Length(string x, int axis) => Gather(Shape(x), Constant((long)axis));
    /// <summary>0, 1, …, <paramref name="count"/> − 1 (int64) for an int64 scalar count.</summary>
    public string Range(string count) => Node("Range", [Constant(0L), count, Constant(1L)]);
    /// <summary>Broadcasts <paramref name="x"/> to the shape held in <paramref name="shape"/>.</summary>
    public string Expand(string x, string shape) => Node("Expand", [x, shape]);
    /// <summary>GatherElements along <paramref name="axis"/>: out[…, i] = data[…, indices[…, i]].</summary>
    public string GatherElements(string data, string indices, int axis) => Node("GatherElements", [data, indices], attributes: [Attr("axis", axis)]);
    /// <summary>Cumulative sum along <paramref name="axis"/>.</summary>
    public string CumSum(string x, int axis) => Node("CumSum", [x, Constant((long)axis)]);

    /// <summary>A float32 scalar constant.</summary>
    public string Scalar(float value) =>
        AddConstant(OnnxDataType.Float, [], BitConverter.GetBytes(value));

    /// <summary>An int64 scalar constant.</summary>
    public string Constant(long value) =>
        AddConstant(OnnxDataType.Int64, [], BitConverter.GetBytes(value));

    /// <summary>An int64 vector constant.</summary>
    public string Constant(long[] values) =>
        AddConstant(OnnxDataType.Int64, [values.Length], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    /// <summary>An int64 vector (a lookup table of indices) as an initializer named <paramref name="name"/>.</summary>
    public string Integers(string name, long[] values) =>
        AddInitializer(new OnnxTensor(name, OnnxDataType.Int64, [values.Length], MemoryMarshal.AsBytes(values.AsSpan()).ToArray()));

    /// <summary>
    /// A weight as an initializer named <paramref name="name"/> (a checkpoint key), float32 — or float16 plus a Cast
    /// to float32 with <see cref="OnnxWeightFormat.Float16"/>; returns the float32 value to use.
    /// </summary>
    public string Initializer(string name, Tensor weight)
    {
        using var values = weight.detach().to(float32).cpu().contiguous();
        float[] data = values.data<float>().ToArray();
        if (Weights != OnnxWeightFormat.Float16)
            return AddInitializer(new OnnxTensor(name, OnnxDataType.Float, values.shape, MemoryMarshal.AsBytes(data.AsSpan()).ToArray()));
        var halves = data.Select(v => (Half)v).ToArray();
        string stored = AddInitializer(new OnnxTensor(name, OnnxDataType.Float16, values.shape, MemoryMarshal.AsBytes(halves.AsSpan()).ToArray()));
        return Cast(stored, OnnxDataType.Float);
    }

    /// <summary>Adds a node and returns its (single) output's name: <paramref name="output"/>, or a fresh one.</summary>
    internal string Node(string opType, IReadOnlyList<string> nodeInputs, string? output = null, IReadOnlyList<OnnxAttribute>? attributes = null)
    {
        string result = output ?? NewName(opType);
        if (output is not null && !names.Add(output)) throw new InvalidOperationException($"ONNX value '{output}' is defined twice.");
        nodes.Add(new OnnxNode($"{opType}_{nodes.Count}", opType, [.. nodeInputs], [result], [.. attributes ?? []]));
        return result;
    }

    // x [.., in] · W [in, out] in int8: DynamicQuantizeLinear(x) → (x_q uint8, x_scale, x_zero);
    // MatMulInteger(x_q, W_q int8, x_zero, 0) → int32; float result = that · x_scale · w_scale[out].
    // W_q = round(W / w_scale) per output column, w_scale = max|W[:, j]| / 127 (symmetric, zero point 0).
    private Func<string, string> QuantizedMatMul(Tensor transposed, string name)
    {
        using var scope = NewDisposeScope(); // keeps the temporaries reachable until the native calls that read them return
        using Scalar tiny = 1e-12f.ToScalar(), top = 127f.ToScalar(), bottom = (-127f).ToScalar();
        Tensor w = transposed.to(float32).cpu();
        Tensor scale = w.abs().amax([0]).clamp_min(tiny).div(top);
        Tensor quantized = (w / scale).round().clamp(bottom, top).to(int8).contiguous();
        string weight = AddInitializer(new OnnxTensor(name + ".quantized", OnnxDataType.Int8, quantized.shape, MemoryMarshal.AsBytes(quantized.data<sbyte>().ToArray().AsSpan()).ToArray()));
        string weightScale = Initializer(name + ".scale", scale);
        string weightZero = AddInitializer(new OnnxTensor(name + ".zero_point", OnnxDataType.Int8, [w.shape[1]], new byte[w.shape[1]]));
        return x =>
        {
            var outputsOfQuantize = new[] { NewName("x_q"), NewName("x_scale"), NewName("x_zero") };
            nodes.Add(new OnnxNode($"DynamicQuantizeLinear_{nodes.Count}", "DynamicQuantizeLinear", [x], outputsOfQuantize, []));
            string product = Node("MatMulInteger", [outputsOfQuantize[0], weight, outputsOfQuantize[2], weightZero]);
            return Mul(Mul(Cast(product, OnnxDataType.Float), outputsOfQuantize[1]), weightScale);
        };
    }

    private string AddConstant(OnnxDataType type, long[] dims, byte[] data)
    {
        var tensor = new OnnxTensor(NewName("const"), type, dims, data);
        initializers.Add(tensor);
        return tensor.Name;
    }

    private string AddInitializer(OnnxTensor tensor)
    {
        if (!names.Add(tensor.Name)) throw new InvalidOperationException($"ONNX initializer '{tensor.Name}' is defined twice.");
        initializers.Add(tensor);
        return tensor.Name;
    }

    private string NewName(string hint)
    {
        string name;
        do name = $"{hint}_{counter++}";
        while (names.Contains(name));
        names.Add(name);
        return name;
    }

    /// <summary>An int attribute.</summary>
    internal static OnnxAttribute Attr(string name, long value) => new(name, null, value, [], null);
    /// <summary>A float attribute.</summary>
    internal static OnnxAttribute Attr(string name, float value) => new(name, value, null, [], null);
    /// <summary>An ints attribute.</summary>
    internal static OnnxAttribute Attr(string name, long[] values) => new(name, null, null, values, null);
}
