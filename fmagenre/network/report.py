"""The network's training report: ``report.md`` and the job's printed summary.

Pure functions of the metrics of :func:`fmagenre.network.training.run`; the test scores use
the same summary (:func:`fmagenre.metrics.classification.classification_summary`) and the
confusion files the same writers (:mod:`fmagenre.ml.report`) as ``jobs/train.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fmagenre.ml.report import zero_recall

SCORE_HEADER = ["model", "accuracy", "kappa", "macro F1", "weighted F1", "validation kappa"]


def _percent(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


def _number(value, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def score_row(metrics: Mapping) -> list[str]:
    test = metrics["test"]["network"]
    return [
        "network",
        _percent(test["accuracy"]),
        _number(test["kappa"]),
        _number(test["f1_macro"]),
        _number(test["f1_weighted"]),
        _number(metrics["training"]["best_kappa"]),
    ]


def markdown_report(metrics: Mapping) -> str:
    """The readable report of a finished run."""
    options, rows, training = metrics["options"], metrics["rows"], metrics["training"]
    network = metrics["network"]
    tracks = {role: sum(n.values()) for role, n in rows["tracks"].items()}
    test = metrics["test"]["network"]
    lines = [
        "# Spectrogram network: training report",
        "",
        f"Started {metrics['started_at']}; patches `{metrics['inputs']['patches']}`, labels"
        f" `{metrics['inputs']['labels']}`; model `{metrics['model']}`.",
        "",
        f"- {tracks['train']} training tracks ({rows['patches']['train']} patches),"
        f" {tracks['validation']} validation tracks, {tracks['test']} test tracks,"
        f" {len(metrics['labels'])} genres; class weights {options['class_weights']}",
        f"- CNN of {network['parameters']:,} parameters on"
        f" {network['architecture']['n_mels']} x {network['architecture']['frames']} log-mel"
        f" patches; channels {', '.join(map(str, network['architecture']['channels']))}",
        f"- {training['processes']} process(es),"
        f" {'local mode' if options['local_mode'] else 'Spark barrier tasks'},"
        f" {'GPU' if options['use_gpu'] else 'CPU'}; batch {options['batch_size']} a process,"
        f" learning rate {options['learning_rate']:g}",
        f"- epochs run: {training['epoch']} of {options['epochs']}"
        f"{' (stopped early)' if training['stopped_early'] else ''}; kept epoch"
        f" {training['best_epoch']} (best validation kappa)"
        + (f"; resumed after epoch {training['resumed_from']}" if training["resumed_from"] else ""),
        "",
        "## Test scores",
        "",
        *_table(SCORE_HEADER, [score_row(metrics)]),
        "",
        "A track's genre is the mean of its patches' log-probabilities.",
        "",
        "## Recall per genre (test)",
        "",
        *_table(
            ["genre", "test tracks", "recall"],
            [
                [genre, str(c["support"]), _percent(c["recall"])]
                for genre, c in test["per_class"].items()
            ],
        ),
        "",
        f"Genres at 0% recall: {', '.join(zero_recall(test)) or 'none'}",
        "",
        "## Epochs",
        "",
        *_table(
            ["epoch", "run", "loss", "validation kappa", "validation accuracy", "s"],
            [
                [
                    str(h["epoch"]),
                    str(h["run"]),
                    _number(h["loss"]),
                    _number(h["validation_kappa"]),
                    _percent(h["validation_accuracy"]),
                    f"{h['seconds']:.1f}",
                ]
                for h in training["history"]
            ],
        ),
        "",
        "## Time per stage",
        "",
        *_table(["stage", "seconds"], [[k, f"{s:.1f}"] for k, s in metrics["timings"].items()]),
        "",
        "## Confusion matrix (test)",
        "",
        "- network: `confusion_network.csv`, ![network](confusion_network.png)",
    ]
    return "\n".join(lines) + "\n"


def console_summary(metrics: Mapping) -> str:
    """The job's printed summary."""
    training = metrics["training"]
    if not metrics["finished"]:
        return (
            f"train_cnn: stopped after epoch {training['epoch']} as asked; the same command"
            f" goes on from there (checkpoint in {metrics['model'].rsplit('/', 1)[0]}/_checkpoint)"
        )
    tracks = {role: sum(n.values()) for role, n in metrics["rows"]["tracks"].items()}
    widths = [10, 10, 8, 10, 13, 16]
    table = [SCORE_HEADER, score_row(metrics)]
    lines = [
        f"train_cnn: {tracks['train']} training, {tracks['validation']} validation,"
        f" {tracks['test']} test tracks, {len(metrics['labels'])} genres;"
        f" {metrics['network']['parameters']:,} parameters",
        *("  " + "".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table),
        f"  epochs: {training['epoch']} (kept {training['best_epoch']}"
        f"{', stopped early' if training['stopped_early'] else ''}"
        f"{f', resumed after {resumed}' if (resumed := training['resumed_from']) else ''})",
        "  time: " + ", ".join(f"{k} {s:.0f} s" for k, s in metrics["timings"].items()),
        f"  model: {metrics['model']}",
        f"  report: {metrics['report']}",
    ]
    return "\n".join(lines)
