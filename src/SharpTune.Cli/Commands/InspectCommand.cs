using System.Globalization;
using SharpTune.Models;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace SharpTune.Cli.Commands;

/// <summary>Options of <c>sharptune inspect</c>.</summary>
public sealed class InspectSettings : ModelSettings;

/// <summary><c>sharptune inspect</c>: the architecture of a model and its parameter counts per module.</summary>
internal sealed class InspectCommand(IAnsiConsole console) : Command<InspectSettings>
{
    public override int Execute(CommandContext context, InspectSettings settings, CancellationToken cancellationToken)
    {
        using var encoder = PretrainedEncoder.Load(settings.ModelDir);
        WriteArchitecture(encoder);
        console.WriteLine();
        console.Write(ParameterTable(encoder.Model));
        return 0;
    }

    private void WriteArchitecture(PretrainedEncoder encoder)
    {
        BertConfig config = encoder.Model.Config;
        console.MarkupLine("[bold]Model[/] " + Markup.Escape(encoder.Directory.Path));
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string name, object value) => grid.AddRow(Markup.Escape(name), Markup.Escape(Convert.ToString(value, CultureInfo.InvariantCulture)!));
        Row("model_type", config.ModelType);
        Row("num_hidden_layers", config.NumHiddenLayers);
        Row("hidden_size", config.HiddenSize);
        Row("num_attention_heads", config.NumAttentionHeads);
        Row("intermediate_size", config.IntermediateSize);
        Row("vocab_size", config.VocabSize);
        Row("max_position_embeddings", config.MaxPositionEmbeddings);
        Row("hidden_act", config.HiddenAct);
        Row("layer_norm_eps", config.LayerNormEps.ToString("R", CultureInfo.InvariantCulture));
        Row("tokenizer", $"{encoder.Tokenizer.VocabSize} tokens, lower_case {encoder.Tokenizer.Options.LowerCase}");
        console.Write(grid);
    }

    /// <summary>Parameters of the embeddings, each layer and the pooler, with the total.</summary>
    internal static Table ParameterTable(BertModel model)
    {
        var rows = new List<(string Module, long Count)> { ("embeddings", Count(model.Embeddings)) };
        for (int i = 0; i < model.Layers.Count; i++) rows.Add(($"encoder.layer.{i}", Count(model.Layers[i])));
        if (model.Pooler is not null) rows.Add(("pooler", Count(model.Pooler)));
        long total = model.parameters().Sum(p => p.numel());

        var table = new Table().AddColumn("Module").AddColumn(new TableColumn("Parameters").RightAligned()).AddColumn(new TableColumn("Size").RightAligned());
        foreach (var (module, count) in rows) table.AddRow(module, count.ToString("N0", CultureInfo.InvariantCulture), Millions(count));
        table.AddRow("[bold]total[/]", $"[bold]{total.ToString("N0", CultureInfo.InvariantCulture)}[/]", $"[bold]{Millions(total)}[/]");
        return table;
    }

    private static long Count(torch.nn.Module module) => module.parameters().Sum(p => p.numel());

    internal static string Millions(long count) => (count / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + " M";
}
