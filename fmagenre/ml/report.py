"""What the training job writes beside its model: metrics, a report, confusion matrices.

In the job's output directory (any Hadoop path)::

    metrics.json               everything measured (see fmagenre.ml.training.run)
    report.md                  the same, readable: test scores, per-genre recall, vote schemes,
                               search, times
    confusion_<model>.csv      test confusion matrix, true genres as rows
    confusion_<model>.png      the same as a heat map: share of each true genre's tracks

for ``<model>`` in ``lr``, ``svc``, ``xgb`` and ``ensemble``, and with external members
(:mod:`fmagenre.ml.external`) each member and ``ensemble_without_<names>``, the vote of the
three models alone. The text forms are pure functions of the metrics;
:func:`write_confusions` and :func:`write_report` write them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
from pyspark.sql import SparkSession

from fmagenre.platform.hadoop import write_output

ENSEMBLE = "ensemble"


def without_key(external: Sequence[str]) -> str:
    """The key of the ensemble of the models alone, beside the ``external`` members."""
    return f"{ENSEMBLE}_without_{'_'.join(external)}"


def _json_ready(value):
    """``value`` with NaN and infinities as None, which JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return value


def metrics_json(metrics: Mapping) -> str:
    return json.dumps(_json_ready(metrics), indent=2, allow_nan=False) + "\n"


def confusion_csv(confusion: np.ndarray, labels: Sequence[str]) -> str:
    """CSV of a confusion matrix with genre names: true genres as rows, predictions as columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true \\ predicted", *labels])
    for label, row in zip(labels, confusion, strict=True):
        writer.writerow([label, *(f"{value:g}" for value in row)])
    return buffer.getvalue()


def confusion_png(confusion: np.ndarray, labels: Sequence[str], *, title: str) -> bytes:
    """A heat map of a confusion matrix as PNG bytes.

    Colours are the share of each true genre's tracks (rows sum to 1, so minority genres
    show as clearly as large ones); cells print the counts.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    matrix = np.asarray(confusion, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = 2.5 + 0.55 * len(labels)
    figure = Figure(figsize=(size + 1.5, size), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(ticks, labels, fontsize=8)
    axes.set_xlabel("predicted genre")
    axes.set_ylabel("true genre")
    axes.set_title(title)
    for i, j in np.ndindex(matrix.shape):
        if matrix[i, j]:
            colour = "white" if shares[i, j] > 0.5 else "black"
            axes.text(j, i, f"{matrix[i, j]:g}", ha="center", va="center", fontsize=6, color=colour)
    figure.colorbar(image, ax=axes, label="share of the true genre's tracks")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _percent(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


def _number(value, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _params(params: Mapping) -> str:
    return ", ".join(
        f"{key}={value if isinstance(value, int) else format(value, '.4g')}"
        for key, value in params.items()
    )


def _models(metrics: Mapping) -> list[str]:
    external = list(metrics.get("external", ()))
    return [*metrics["search"], *external, ENSEMBLE, *([without_key(external)] if external else [])]


def score_table(metrics: Mapping) -> list[list[str]]:
    """Rows of the test-score table: model, accuracy, kappa, F1s, CV kappa."""
    rows = []
    for model in _models(metrics):
        test = metrics["test"][model]
        search = metrics["search"].get(model)
        cv = search["candidates"][search["best"]]["score"] if search else None
        if model in metrics.get("external", ()):
            cv = metrics["vote"]["member_cv_kappa"][model]
        rows.append(
            [
                model,
                _percent(test["accuracy"]),
                _number(test["kappa"]),
                _number(test["f1_macro"]),
                _number(test["f1_weighted"]),
                _number(cv),
            ]
        )
    return rows


SCORE_HEADER = ["model", "accuracy", "kappa", "macro F1", "weighted F1", "CV kappa"]
#: What each vote scheme of ``metrics["vote"]`` is.
SCHEME_TITLES = {
    "hard": "hard vote",
    "kappa": "votes weighted by CV kappa",
    "soft": "soft vote (calibrated probabilities)",
    "soft_bias": "soft vote + class biases tuned for kappa",
    "soft_f1": "soft vote + class biases tuned for macro F1",
}


def zero_recall(test: Mapping) -> list[str]:
    """The genres with test rows of which none was recognised."""
    return [genre for genre, c in test["per_class"].items() if c["support"] and not c["recall"]]


def vote_table(metrics: Mapping) -> list[list[str]]:
    """Rows of the vote-scheme table: scheme, CV kappa, test accuracy, kappa, macro F1, genres
    at 0% recall; the chosen scheme marked."""
    vote = metrics["vote"]
    rows = []
    for key, test in vote["test"].items():
        mark = " (chosen)" if key == vote["scheme"] else ""
        rows.append(
            [
                f"{key}{mark}",
                _number(vote["cv_kappa"].get(key)),
                _percent(test["accuracy"]),
                _number(test["kappa"]),
                _number(test["f1_macro"]),
                str(len(zero_recall(test))),
            ]
        )
    return rows


VOTE_HEADER = ["scheme", "CV kappa", "accuracy", "kappa", "macro F1", "genres at 0% recall"]


def _vote_lines(metrics: Mapping) -> list[str]:
    """The report's vote section: the chosen scheme, its parameters, every scheme's scores."""
    vote = metrics["vote"]
    lines = ["## Vote", ""]
    lines.append(
        f"Chosen: {vote['scheme']} ({SCHEME_TITLES.get(vote['scheme'], vote['scheme'])},"
        f" --vote {metrics['options']['vote']}); model weights "
        + ", ".join(f"{m} {w:.4g}" for m, w in vote["weights"].items())
    )
    if vote["temperatures"]:
        lines[-1] += "; temperatures " + ", ".join(
            f"{m} {t:.4g}" for m, t in vote["temperatures"].items()
        )
    if vote["class_bias"]:
        lines += [
            "",
            "Class biases: " + ", ".join(f"{g} {b:+.2f}" for g, b in vote["class_bias"].items()),
        ]
    lines += [
        "",
        "Every scheme from the same fitted models: CV kappa on the out-of-fold predictions of"
        " each model's best candidate (temperatures and biases fitted on the other folds), test"
        " scores on the test split.",
        "",
        *_markdown_table(VOTE_HEADER, vote_table(metrics)),
        "",
    ]
    schemes = list(vote["test"])
    recall_rows = [
        [genre, *(_percent(vote["test"][key]["per_class"][genre]["recall"]) for key in schemes)]
        for genre in metrics["labels"]
    ]
    lines += ["Recall per genre (test) by scheme:", ""]
    lines += _markdown_table(["genre", *schemes], recall_rows)
    return [*lines, ""]


def _external_lines(metrics: Mapping) -> list[str]:
    """The report's section on external members, the vote without them, and the genres each
    model never recognised."""
    vote, test = metrics["vote"], metrics["test"]
    external = metrics["external"]
    lines = ["## External members", ""]
    for name, member in external.items():
        lines.append(
            f"- {name}: `{member['source']}`, saved in `{member['saved']}`;"
            f" {member['held_out_tracks']} training tracks held out of its training, of which"
            f" {member['vote_rows']} out-of-fold rows it scores; on the test split it scored"
            f" {test[name]['rows']} rows and abstained on {member['test_abstained']}: its"
            " scores above count the rows it scored, the ensemble's every row"
        )
    lines.append(
        f"- the vote with them was fitted and scored on {vote['rows']} out-of-fold rows"
        f" (in {vote['folds']} folds) that every voter scores"
        + (f"; {vote['fallback']}" if vote["fallback"] else "")
    )
    alone = vote["without"]
    lines += [
        f"- without them ({without_key(list(external))}): {alone['scheme']} vote, model weights "
        + ", ".join(f"{m} {w:.4g}" for m, w in alone["weights"].items())
        + "; CV kappa "
        + ", ".join(f"{key} {_number(score)}" for key, score in alone["cv_kappa"].items()),
        "",
        "Genres at 0% recall (test):",
        "",
    ]
    zero = [[model, ", ".join(zero_recall(test[model])) or "none"] for model in _models(metrics)]
    return [*lines, *_markdown_table(["model", "genres"], zero), ""]


def _row_counts(rows: dict, labels: list) -> str:
    if "tracks" not in rows:
        return (
            f"- {rows['train_total']} training tracks ({rows['search']} in the search sample),"
            f" {rows['test_total']} test tracks, {len(labels)} genres"
        )
    tracks = {split: sum(n.values()) for split, n in rows["tracks"].items()}
    return (
        f"- rows are windows of tracks: {rows['train_total']} training windows of"
        f" {tracks['train']} tracks ({rows['search']} windows in the search sample),"
        f" {rows['test_total']} test windows of {tracks['test']} tracks; test scores count"
        f" windows; {len(labels)} genres"
    )


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown_report(metrics: Mapping) -> str:
    """The readable report of a training run."""
    options = metrics["options"]
    rows = metrics["rows"]
    models = _models(metrics)
    lines = [
        "# Genre classifier: training report",
        "",
        f"Started {metrics['started_at']}; features `{metrics['inputs']['features']}`,"
        f" labels `{metrics['inputs']['labels']}`; model `{metrics['model']}`.",
        "",
        _row_counts(rows, metrics["labels"]),
        f"- {metrics['features']['count']} feature columns"
        f" ({metrics['features'].get('set', 'mir')}): "
        + ", ".join(f"{family} ({n})" for family, n in metrics["features"]["families"].items()),
        f"- random search: {options['candidates']} candidates, stratified {options['folds']}-fold"
        f" cross-validation, Cohen's kappa; seed {options['seed']};"
        f" class weights {options['class_weights']}",
        f"- {metrics['vote']['scheme'] if 'vote' in metrics else 'hard'} vote; hard-vote ties"
        f" (all models disagree) to: {', '.join(metrics['tie_break_order'])}",
        "",
        "## Test scores",
        "",
        *_markdown_table(SCORE_HEADER, score_table(metrics)),
        "",
        "## Recall per genre (test)",
        "",
    ]
    recall_rows = []
    for genre in metrics["labels"]:
        per_model = [metrics["test"][model]["per_class"][genre] for model in models]
        recall_rows.append(
            [genre, str(per_model[0]["support"]), *(_percent(c["recall"]) for c in per_model)]
        )
    lines += _markdown_table(["genre", "test tracks", *models], recall_rows)
    lines.append("")
    if "external" in metrics:
        lines += _external_lines(metrics)
    if "vote" in metrics:
        lines += _vote_lines(metrics)
    lines += ["## Random search", ""]
    for model, search in metrics["search"].items():
        best = search["best"]
        lines += [
            f"### {model}: {search['seconds']:.0f} s, best candidate {best + 1}",
            "",
            "Ranges (log-uniform): "
            + ", ".join(f"{p} [{lo:g}, {hi:g}]" for p, (lo, hi) in search["space"].items()),
            "",
        ]
        candidate_rows = [
            [
                f"{i + 1}{' (best)' if i == best else ''}",
                _params(c["params"]),
                ", ".join(_number(s) for s in c["fold_scores"]),
                _number(c["score"]),
                f"{c['seconds']:.1f}",
            ]
            for i, c in enumerate(search["candidates"])
        ]
        lines += _markdown_table(["#", "parameters", "fold kappas", "mean", "s"], candidate_rows)
        lines.append("")
    lines += ["## Time per stage", ""]
    lines += _markdown_table(
        ["stage", "seconds"], [[stage, f"{s:.1f}"] for stage, s in metrics["timings"].items()]
    )
    lines += ["", "## Confusion matrices (test)", ""]
    for model in models:
        lines.append(f"- {model}: `confusion_{model}.csv`, ![{model}](confusion_{model}.png)")
    return "\n".join(lines) + "\n"


def console_summary(metrics: Mapping) -> str:
    """The short summary the job prints."""
    table = [SCORE_HEADER, *score_table(metrics)]
    widths = [max(10, 2 + max(len(row[0]) for row in table)), 9, 7, 9, 12, 9]
    lines = [
        f"train: {metrics['rows']['train_total']} training, {metrics['rows']['test_total']}"
        f" test tracks, {len(metrics['labels'])} genres, {metrics['features']['count']} features",
    ]
    lines += [
        "  " + "".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table
    ]
    if "vote" in metrics:
        vote = metrics["vote"]
        lines.append(
            f"  vote: {vote['scheme']}; CV kappa "
            + ", ".join(f"{key} {_number(score)}" for key, score in vote["cv_kappa"].items())
        )
    for name, member in metrics.get("external", {}).items():
        lines.append(
            f"  {name}: vote fitted on {vote['rows']} out-of-fold rows; scored"
            f" {metrics['test'][name]['rows']} test rows, abstained on {member['test_abstained']}"
        )
    if "external" in metrics:
        zero = {model: zero_recall(metrics["test"][model]) for model in _models(metrics)}
        lines.append(
            "  genres at 0% recall: "
            + "; ".join(f"{model} {', '.join(g) or 'none'}" for model, g in zero.items())
        )
    timings = metrics["timings"]
    lines.append(
        "  time: " + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in timings.items())
    )
    lines.append(f"  model: {metrics['model']}")
    lines.append(f"  report: {metrics['report']}")
    return "\n".join(lines)


def write_confusions(
    spark: SparkSession,
    directory: str,
    confusions: Mapping[str, np.ndarray],
    labels: Sequence[str],
) -> None:
    """Write each model's confusion matrix as ``confusion_<model>.csv`` and ``.png``."""
    for model, confusion in confusions.items():
        write_output(spark, directory, f"confusion_{model}.csv", confusion_csv(confusion, labels))
        png = confusion_png(confusion, labels, title=f"{model}: test confusion matrix")
        write_output(spark, directory, f"confusion_{model}.png", png)


def write_report(spark: SparkSession, directory: str, metrics: Mapping) -> None:
    """Write ``metrics.json`` and ``report.md`` in ``directory``."""
    write_output(spark, directory, "report.md", markdown_report(metrics))
    write_output(spark, directory, "metrics.json", metrics_json(metrics))
