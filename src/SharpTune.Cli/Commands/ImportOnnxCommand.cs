using System.ComponentModel;
using System.Globalization;
using SharpTune.Checkpoints;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

/// <summary>Options of <c>sharptune import-onnx</c>.</summary>
public sealed class ImportOnnxSettings : CommandSettings
{
    /// <summary>The ONNX export to import.</summary>
    [CommandOption("--onnx <FILE>")]
    [Description("The torch.onnx export of a BERT encoder.")]
    public string? Onnx { get; init; }

    /// <summary>Its WordPiece vocabulary.</summary>
    [CommandOption("--vocab <FILE>")]
    [Description("The export's WordPiece vocab.txt.")]
    public string? Vocab { get; init; }

    /// <summary>The output directory (must not exist or be empty).</summary>
    [CommandOption("-o|--out <DIR>")]
    [Description("Output Hugging Face model directory; must not exist or be empty (required).")]
    public string? Out { get; init; }

    /// <summary>Import the packaged all-MiniLM-L6-v2 instead of --onnx/--vocab.</summary>
    [CommandOption("--packaged")]
    [Description("Import the packaged all-MiniLM-L6-v2 export instead of --onnx and --vocab.")]
    public bool Packaged { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Out is null) return ValidationResult.Error("--out is required.");
        if (Packaged && (Onnx is not null || Vocab is not null)) return ValidationResult.Error("--packaged imports the packaged model; do not also give --onnx or --vocab.");
        if (!Packaged && (Onnx is null || Vocab is null)) return ValidationResult.Error("give --onnx and --vocab, or --packaged.");
        return ValidationResult.Success();
    }
}

/// <summary><c>sharptune import-onnx</c>: turns an ONNX BERT export into a Hugging Face model directory and reports how.</summary>
internal sealed class ImportOnnxCommand(IAnsiConsole console) : Command<ImportOnnxSettings>
{
    public override int Execute(CommandContext context, ImportOnnxSettings settings, CancellationToken cancellationToken)
    {
        SharpTune.Native.TorchRuntime.EnsureLoaded();
        OnnxImportReport report = settings.Packaged ? ImportPackaged(settings.Out!) : OnnxImporter.Import(settings.Onnx!, settings.Vocab!, settings.Out!);
        Write(report);
        return 0;
    }

    private static OnnxImportReport ImportPackaged(string outDir)
    {
        string work = Path.Combine(Path.GetTempPath(), "sharptune-import-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            string onnx = Path.Combine(work, "model.onnx"), vocab = Path.Combine(work, "vocab.txt");
            string assembly = PackagedResources.MiniLMAssemblyPath;
            PackagedResources.ExtractToFile(assembly, PackagedResources.MiniLMOnnx, onnx);
            PackagedResources.ExtractToFile(assembly, PackagedResources.MiniLMVocab, vocab);
            return OnnxImporter.Import(onnx, vocab, outDir);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    // "46: embeddings.position_ids, 925, … (buffers and shape constants)"; the full list is in the report.
    private static string Summary(IReadOnlyList<string> names) => names.Count == 0 ? "none"
        : $"{names.Count}: {string.Join(", ", names.Take(6))}{(names.Count > 6 ? ", …" : "")} (buffers and shape constants)";

    private void Write(OnnxImportReport report)
    {
        var config = report.Config;
        console.MarkupLine("[green]Imported[/] " + Markup.Escape(report.OutputDirectory));
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string name, string value) => grid.AddRow(Markup.Escape(name), Markup.Escape(value));
        Row("architecture", $"{config.ModelType}: {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, {config.NumAttentionHeads} heads, intermediate {config.IntermediateSize}, vocab {config.VocabSize}");
        Row("tensors mapped", report.Mappings.Count.ToString(CultureInfo.InvariantCulture));
        Row("initializers ignored", Summary(report.IgnoredInitializers));
        Row("num_attention_heads from", report.AttentionHeadsSource);
        Row("layer_norm_eps from", report.LayerNormEpsSource);
        Row("pooler", report.PoolerInitialized ? $"not in the export; initialised (seed {OnnxImporter.PoolerSeed})" : "from the export");
        Row("time", $"{report.Elapsed.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture)} s");
        console.Write(grid);

        var rules = new Table().AddColumn("Rule").AddColumn(new TableColumn("Tensors").RightAligned()).AddColumn(new TableColumn("Transposed").RightAligned());
        foreach (var group in report.Mappings.GroupBy(m => m.Rule).OrderBy(g => g.Key, StringComparer.Ordinal))
            rules.AddRow(Markup.Escape(group.Key), group.Count().ToString(CultureInfo.InvariantCulture), group.Count(m => m.Transposed).ToString(CultureInfo.InvariantCulture));
        console.Write(rules);

        if (report.Notes.Count == 0) console.MarkupLine("notes: none (everything was read from the graph)");
        else foreach (string note in report.Notes) console.MarkupLine("[yellow]note:[/] " + Markup.Escape(note));
    }
}
