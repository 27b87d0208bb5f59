using System.ComponentModel;
using System.Globalization;
using SharpTune.Strategies;
using SharpTune.Models;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace SharpTune.Cli.Commands;

/// <summary>Options of <c>sharptune inspect</c>.</summary>
public sealed class InspectSettings : ModelSettings
{
    /// <summary>A strategy whose parameter table to print (no training).</summary>
    [CommandOption("--strategy <STRATEGY>")]
    [Description("Print this strategy's parameter table: frozen | full | top:K | bitfit | lora[[:r=8,…]] | gradual.")]
    public string? Strategy { get; init; }

    /// <summary>The head to put on the encoder for the table.</summary>
    [CommandOption("--head <HEAD>")]
    [Description("Head for the strategy table: cls | pooled | mean.")]
    [DefaultValue("mean")]
    public string Head { get; init; } = "mean";

    /// <summary>Number of labels of the head.</summary>
    [CommandOption("--labels <N>")]
    [Description("Number of labels of the head (for its parameter count).")]
    [DefaultValue(2)]
    public int Labels { get; init; } = 2;
}

/// <summary><c>sharptune inspect</c>: the architecture of a model and its parameter counts per module.</summary>
internal sealed class InspectCommand(IAnsiConsole console) : Command<InspectSettings>
{
    public override int Execute(CommandContext context, InspectSettings settings, CancellationToken cancellationToken)
    {
        using var encoder = PretrainedEncoder.Load(settings.ModelDir);
        WriteArchitecture(encoder);
        console.WriteLine();
        console.Write(ParameterTable(encoder.Model));
        if (settings.Strategy is null) return 0;

        // The table of item "say what trains": the strategy applied to encoder + head, nothing trained.
        Strategy strategy = Strategies.Strategy.Parse(settings.Strategy);
        if (settings.Labels < 1) throw new SharpTuneException($"--labels must be positive, got {settings.Labels}.");
        var head = Heads.HeadRegistry.Create(settings.Head, encoder.Model.Config.HiddenSize, settings.Labels);
        var model = new SequenceClassifier(encoder.Model, head); // the encoder is disposed with `encoder`
        TrainingPlan plan = StrategyApplier.Apply(model, strategy, rates: new LearningRates(strategy.DefaultLearningRate));
        console.WriteLine();
        console.Write(ConsoleProgress.PlanTable(plan));
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
