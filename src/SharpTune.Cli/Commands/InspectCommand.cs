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
        var head = Heads.HeadRegistry.Create(settings.Head, encoder.Model, settings.Labels);
        var model = new SequenceClassifier(encoder.Model, head); // the encoder is disposed with `encoder`
        TrainingPlan plan = StrategyApplier.Apply(model, strategy, rates: new LearningRates(strategy.DefaultLearningRate));
        console.WriteLine();
        console.Write(ConsoleProgress.PlanTable(plan));
        return 0;
    }

    private void WriteArchitecture(PretrainedEncoder encoder)
    {
        EncoderConfig config = encoder.Model.Config;
        console.MarkupLine("[bold]Model[/] " + Markup.Escape(encoder.Directory.Path));
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string name, object value) => grid.AddRow(Markup.Escape(name), Markup.Escape(Convert.ToString(value, CultureInfo.InvariantCulture)!));
        Row("architecture", $"{config.ModelType} ({encoder.Model.Architecture.BaseClass}, keys under '{encoder.Model.Architecture.Prefix}.' in task checkpoints)");
        // Every scalar of config.json in the architecture's own key names (DistilBERT says dim, BERT hidden_size).
        foreach (var (key, value) in config.ToJson())
            if (value is System.Text.Json.Nodes.JsonValue scalar && key is not "model_type" and not "transformers_version" and not "torch_dtype")
                Row(key, scalar.TryGetValue(out string? text) ? text : scalar.ToJsonString());
        Row("tokenizer", $"{encoder.Tokenizer.VocabSize} tokens");
        if (encoder.UnusedKeys.Count > 0)
            Row("not used", $"{encoder.UnusedKeys.Count} head tensor(s) of the checkpoint ({encoder.UnusedKeysSummary})");
        console.Write(grid);
    }

    /// <summary>Parameters of the embeddings, each layer and the pooler (the architecture's groups), with the total.</summary>
    internal static Table ParameterTable(Encoder model)
    {
        int layers = model.Config.NumHiddenLayers;
        var counts = new Dictionary<string, long>();
        foreach (var (key, parameter) in model.named_parameters())
        {
            var (group, _, _) = ParameterGroups.Classify(model.Architecture.Groups, key, layers);
            counts[group] = counts.GetValueOrDefault(group) + parameter.numel();
        }
        long total = counts.Values.Sum();

        var table = new Table().AddColumn("Module").AddColumn(new TableColumn("Parameters").RightAligned()).AddColumn(new TableColumn("Size").RightAligned());
        foreach (string group in ParameterGroups.Order(layers).Where(counts.ContainsKey))
            table.AddRow(group, counts[group].ToString("N0", CultureInfo.InvariantCulture), Millions(counts[group]));
        table.AddRow("[bold]total[/]", $"[bold]{total.ToString("N0", CultureInfo.InvariantCulture)}[/]", $"[bold]{Millions(total)}[/]");
        return table;
    }

    internal static string Millions(long count) => (count / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + " M";
}
