using System.Text.Json.Nodes;

namespace SharpTune.Training;

/// <summary>
/// The JSON form of an evaluation's details, shared by <c>sharptune evaluate --format json</c> and a run's
/// <c>evaluation.json</c>: <c>per_class</c> (label, precision, recall, F1, support; per tag for token tasks) and, for
/// single-label and token classification, <c>confusion_matrix</c> (labels; rows gold, columns predicted).
/// </summary>
public static class EvaluationJson
{
    /// <summary>The per-class scores and confusion matrix of <paramref name="details"/> (nothing for regression).</summary>
    public static JsonObject Details(EvaluationMetrics? details)
    {
        var json = new JsonObject();
        var (perClass, confusion) = details switch
        {
            ClassificationMetrics c => (c.PerClass, c.ConfusionMatrix),
            MultiLabelMetrics m => (m.PerClass, (int[][]?)null),
            TokenMetrics t => (t.PerTag, t.ConfusionMatrix),
            _ => ((IReadOnlyList<ClassScore>?)null, (int[][]?)null),
        };
        if (perClass is not null)
            json["per_class"] = new JsonArray(perClass.Select(c => (JsonNode)new JsonObject
            {
                ["label"] = c.Label, ["precision"] = c.Precision, ["recall"] = c.Recall, ["f1"] = c.F1, ["support"] = c.Support,
            }).ToArray());
        if (perClass is not null && confusion is not null)
            json["confusion_matrix"] = new JsonObject
            {
                ["labels"] = new JsonArray(perClass.Select(c => (JsonNode)JsonValue.Create(c.Label)!).ToArray()),
                ["rows_gold_columns_predicted"] = new JsonArray(confusion
                    .Select(row => (JsonNode)new JsonArray(row.Select(v => (JsonNode)JsonValue.Create(v)).ToArray())).ToArray()),
            };
        return json;
    }
}
