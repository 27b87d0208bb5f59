using System.ComponentModel;
using SharpTune.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SharpTune.Cli.Commands;

internal sealed class ReportSettings : CommandSettings
{
    [CommandArgument(0, "<DIR>")]
    [Description("A run directory (written by train or compare) or a comparison directory (written by compare or demo).")]
    public string Directory { get; set; } = "";

    [CommandOption("--out <FILE>")]
    [Description("Where to write the page. Default: report.html in DIR.")]
    public string? Out { get; set; }
}

/// <summary>sharptune report: one self-contained HTML page of a run or a comparison (see <see cref="HtmlReport"/>).</summary>
internal sealed class ReportCommand(IAnsiConsole console) : Command<ReportSettings>
{
    public override int Execute(CommandContext context, ReportSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Out is not null && Directory.Exists(settings.Out))
            throw new SharpTuneException($"{settings.Out}: --out is a directory; give the HTML file to write.");
        string path = HtmlReport.Write(settings.Directory, settings.Out);
        console.WriteLine($"Written: {Path.GetFullPath(path)} ({new FileInfo(path).Length / 1024} KiB, self-contained: open it in a browser).");
        return 0;
    }
}
