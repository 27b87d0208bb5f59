using System.Text.RegularExpressions;

namespace SharpTune.Checkpoints;

/// <summary>Where one Hugging Face key's tensor comes from in an ONNX graph.</summary>
/// <param name="Key">The HF <c>BertModel</c> key, e.g. <c>encoder.layer.0.attention.self.query.weight</c>.</param>
/// <param name="OnnxName">The ONNX initializer (or Constant output) holding the data, e.g. <c>927</c>.</param>
/// <param name="Transposed">True when the ONNX tensor is stored [in, out] and is transposed to HF's [out, in].</param>
/// <param name="Rule">Which mapping rule matched (see <see cref="OnnxImporter"/>).</param>
public sealed record OnnxKeyMapping(string Key, string OnnxName, bool Transposed, string Rule);

/// <summary>
/// The one table that maps a torch.onnx export of BERT to HF <c>BertModel</c> keys. torch.onnx keeps
/// the module names of biases, LayerNorms and embeddings, but stores every <c>nn.Linear</c> weight
/// transposed, as the B input of a MatMul, under an opaque name (<c>927</c>, <c>onnx::MatMul_1234</c>).
/// Rules, in order:
/// <list type="number">
/// <item><b>named</b>: an initializer whose name, without a <c>bert.</c> prefix, is a BertModel key keeps
/// that key (transposed only if it is the [in, out] B input of a MatMul, or of a Gemm without transB).</item>
/// <item><b>matmul+bias</b>: <c>Add(MatMul(x, W), b)</c> with <c>b</c> named <c>M.bias</c> → <c>W</c> is
/// <c>M.weight</c>, transposed.</item>
/// <item><b>gemm+bias</b>: <c>Gemm(x, W, b)</c> with <c>b</c> named <c>M.bias</c> → <c>W</c> is <c>M.weight</c>,
/// transposed unless transB = 1.</item>
/// <item><b>ignored</b>: <c>embeddings.position_ids</c> (a buffer HF rebuilds, not a parameter), non-float
/// initializers (shape constants of Reshape/Slice) and float scalars (folded constants such as eps).</item>
/// </list>
/// Any other float initializer is an error naming it.
/// </summary>
internal static class OnnxKeyMap
{
    private static readonly string[] Prefixes = ["bert."];
    private static readonly string[] IgnoredNames = ["embeddings.position_ids"];

    private static readonly Regex BertKey = new(
        @"^(embeddings\.(word_embeddings|position_embeddings|token_type_embeddings)\.weight" +
        @"|embeddings\.LayerNorm\.(weight|bias)" +
        @"|encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.(weight|bias)" +
        @"|encoder\.layer\.\d+\.(attention\.output|output)\.LayerNorm\.(weight|bias)" +
        @"|pooler\.dense\.(weight|bias))$",
        RegexOptions.CultureInvariant);

    /// <summary>The HF key of an ONNX name, or null if the name is not a (prefixed) BertModel key.</summary>
    public static string? HfKey(string onnxName)
    {
        string name = onnxName;
        foreach (string prefix in Prefixes)
            if (name.StartsWith(prefix, StringComparison.Ordinal)) name = name[prefix.Length..];
        return BertKey.IsMatch(name) ? name : null;
    }

    /// <summary>
    /// Maps every initializer of <paramref name="graph"/> to a BertModel key; returns the mappings and the
    /// names of the initializers deliberately left out. <paramref name="path"/> is named in errors.
    /// </summary>
    public static (List<OnnxKeyMapping> Mappings, List<string> Ignored) Map(OnnxGraph graph, string path)
    {
        var mappings = new List<OnnxKeyMapping>();
        var ignored = new List<string>();
        var mappedTensors = new HashSet<string>();

        void Add(string key, string onnxName, bool transposed, string rule)
        {
            var clash = mappings.FirstOrDefault(m => m.Key == key);
            if (clash is not null)
                throw new SharpTuneException($"{path}: both '{clash.OnnxName}' and '{onnxName}' map to key '{key}'.");
            mappings.Add(new OnnxKeyMapping(key, onnxName, transposed, rule));
            mappedTensors.Add(onnxName);
        }

        // Rules 2 and 3: weights found through the bias that follows them.
        foreach (var node in graph.Nodes)
        {
            if (node.OpType == "MatMul" && node.Inputs.Length == 2 && IsOpaqueWeight(graph, node.Inputs[1]))
            {
                foreach (var add in graph.Consumers(node.Outputs[0]).Where(n => n.OpType == "Add"))
                {
                    string other = add.Inputs[0] == node.Outputs[0] ? add.Inputs[1] : add.Inputs[0];
                    if (BiasModule(graph, other) is string module)
                        Add(module + ".weight", node.Inputs[1], transposed: true, "matmul+bias");
                }
            }
            else if (node.OpType == "Gemm" && node.Inputs.Length == 3 && IsOpaqueWeight(graph, node.Inputs[1])
                     && BiasModule(graph, node.Inputs[2]) is string module)
            {
                Add(module + ".weight", node.Inputs[1], transposed: node.Attribute("transB")?.Int != 1, "gemm+bias");
            }
        }

        // Rules 1 and 4, and the error for anything left.
        foreach (var tensor in graph.Initializers.Values)
        {
            if (mappedTensors.Contains(tensor.Name)) continue;
            if (HfKey(tensor.Name) is string key)
            {
                if (tensor.DataType != OnnxDataType.Float)
                    throw new SharpTuneException($"{path}: initializer '{tensor.Name}' is {tensor.DataType}; BertModel weights must be float32.");
                Add(key, tensor.Name, NamedWeightIsInputMajor(graph, tensor.Name), "named");
            }
            else if (IgnoredNames.Contains(StripPrefix(tensor.Name)) || tensor.DataType != OnnxDataType.Float || tensor.ElementCount <= 1)
            {
                ignored.Add(tensor.Name);
            }
            else
            {
                string users = string.Join(", ", graph.Consumers(tensor.Name).Select(n => $"{n.OpType} '{n.Name}'").Take(3));
                throw new SharpTuneException(
                    $"{path}: initializer '{tensor.Name}' ({tensor.DataType} {tensor.ShapeText}, used by {(users.Length == 0 ? "no node" : users)}) " +
                    "cannot be mapped to a BertModel key: it is neither named like one nor the weight of a MatMul/Gemm followed by a named bias.");
            }
        }
        return (mappings, ignored);
    }

    private static string StripPrefix(string name) =>
        Prefixes.FirstOrDefault(p => name.StartsWith(p, StringComparison.Ordinal)) is string p ? name[p.Length..] : name;

    // A 2-D float constant whose name is not already a BertModel key.
    private static bool IsOpaqueWeight(OnnxGraph graph, string name) =>
        HfKey(name) is null && graph.Constant(name) is { DataType: OnnxDataType.Float, Dims.Length: 2 };

    // "encoder.layer.0.attention.self.query" for a named bias initializer, else null.
    private static string? BiasModule(OnnxGraph graph, string name) =>
        graph.Initializers.ContainsKey(name) && HfKey(name) is string key && key.EndsWith(".bias", StringComparison.Ordinal)
        && !key.Contains("LayerNorm", StringComparison.Ordinal)
            ? key[..^".bias".Length]
            : null;

    // A named Linear weight used as MatMul's B, or Gemm's B without transB, is stored [in, out].
    private static bool NamedWeightIsInputMajor(OnnxGraph graph, string name) =>
        graph.Consumers(name).Any(n =>
            (n.OpType == "MatMul" && n.Inputs.Length == 2 && n.Inputs[1] == name) ||
            (n.OpType == "Gemm" && n.Inputs.Length >= 2 && n.Inputs[1] == name && n.Attribute("transB")?.Int != 1));
}
