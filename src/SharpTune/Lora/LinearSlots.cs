using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Lora;

/// <summary>
/// Swaps a Linear layer of a model for a wrapper (a LoRA adapter) and back. Model files name their fields after the
/// checkpoint keys and declare the Linear layers an adapter may wrap as <c>Module&lt;Tensor, Tensor&gt;</c> fields, so
/// the key segment is the field to replace: this one helper does it for every architecture.
/// </summary>
public static class LinearSlots
{
    /// <summary>Every module of <paramref name="model"/> by its dotted name (the model itself under "").</summary>
    public static Dictionary<string, nn.Module> ModulesByName(nn.Module model) =>
        model.named_modules().ToDictionary(m => m.name, m => m.module, StringComparer.Ordinal);

    /// <summary>
    /// Replaces the submodule <paramref name="key"/> (dotted, a key of <paramref name="modules"/>) with
    /// <paramref name="replacement"/>: the field of that name in its parent and the registration, so the key stays.
    /// </summary>
    public static void Replace(IReadOnlyDictionary<string, nn.Module> modules, string key, nn.Module<Tensor, Tensor> replacement)
    {
        int dot = key.LastIndexOf('.');
        string parentKey = dot < 0 ? "" : key[..dot], name = key[(dot + 1)..];
        nn.Module parent = modules[parentKey];
        FieldInfo field = FindField(parent.GetType(), name)
            ?? throw new SharpTuneException($"{parent.GetType().Name} has no field '{name}' for the layer {key}; model files name fields after their keys.");
        if (!field.FieldType.IsInstanceOfType(replacement) || field.IsInitOnly)
            throw new SharpTuneException($"{parent.GetType().Name}.{name} is declared {(field.IsInitOnly ? "readonly " : "")}{field.FieldType.Name}; " +
                "declare it as a non-readonly Module<Tensor, Tensor> so that an adapter can wrap it.");
        field.SetValue(parent, replacement);
        parent.register_module(name, null!); // TorchSharp: registering null removes the old child
        parent.register_module(name, replacement);
    }

    private static FieldInfo? FindField(Type? type, string name)
    {
        for (; type is not null; type = type.BaseType)
            if (type.GetField(name, BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly) is { } field)
                return field;
        return null;
    }
}
