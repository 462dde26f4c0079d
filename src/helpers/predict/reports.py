"""The metrics reports: text log, confusion-matrix plots, JSON, and their file names.

Every report of a model (training log, metrics of each split, change detection) lies in one
folder, ``{reports_root}/logs_and_plots/{name}/``, built by ``config.report_dir`` alone
(:mod:`helpers.core.layout`); the file names of the metrics reports are built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core.config import SPLITS
from helpers.core.io import atomic_path, write_json_atomic, write_text_atomic


def format_report(metrics: dict[str, Any], title: str = "") -> str:
    """A readable text table of :func:`score`'s metrics (with optional title lines)."""
    names = list(metrics["per_class"])
    width = max(12, *(len(n) for n in names))
    lines = [title] if title else []
    lines += [f"pixels scored: {metrics['n_pixels']:,} (unclassifiable and outside pixels removed)",
              "",
              f"{'overall accuracy':<20}{metrics['overall_accuracy']:.4f}",
              f"{'Cohen kappa':<20}{metrics['kappa']:.4f}",
              "",
              f"{'class':<{width}}  {'F1':>7} {'precision':>9} {'recall':>7} {'Jaccard':>7} {'support':>10}"]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<{width}}  {m['f1']:>7.4f} {m['precision']:>9.4f} {m['recall']:>7.4f} "
                     f"{m['jaccard']:>7.4f} {m['support']:>10,}")
    lines.append(f"{'weighted average':<{width}}  {metrics['f1_weighted']:>7.4f} {metrics['precision_weighted']:>9.4f} "
                 f"{metrics['recall_weighted']:>7.4f} {metrics['jaccard_weighted']:>7.4f} "
                 f"{metrics['n_pixels']:>10,}")
    labels = [str(i) for i in metrics["labels"]]
    key = ", ".join(f"{i} = {n}" for i, n in zip(labels, names, strict=True))
    for heading, matrix, fmt in (("confusion matrix (rows: ground truth, columns: prediction)",
                                  metrics["confusion_matrix"], "{:>9d}"),
                                 ("confusion matrix normalised by ground-truth row",
                                  metrics["confusion_matrix_normalised"], "{:>9.3f}")):
        lines += ["", heading, f"classes: {key}", "      " + "".join(f"{i:>9}" for i in labels)]
        lines += [f"{i:>6}" + "".join(fmt.format(v) for v in row) for i, row in zip(labels, matrix, strict=True)]
    return "\n".join(lines) + "\n"


def split_suffix(split: str) -> str:
    """File-name suffix of a split's reports: none for the test split (the original's names), else ``_{split}``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return "" if split == "test" else f"_{split}"


def report_paths(out_dir: Path, model_name: str, split: str = "test") -> dict[str, Path]:
    """The files :func:`write_report` writes for a split, by role.

    The test split keeps the original's names (``{name}_log.txt``, ``metrics.json`` ...); any
    other split writes beside them (``{name}_valid_log.txt``, ``metrics_valid.json`` ...), never
    over them.
    """
    tag = split_suffix(split)
    stem = f"{model_name}{tag}"
    return {"log": out_dir / f"{stem}_log.txt",
            "cm_png": out_dir / f"{stem}_confusion_matrix.png",
            "cm_pdf": out_dir / f"{stem}_confusion_matrix.pdf",
            "cm_normalised_png": out_dir / f"{stem}_confusion_matrix_normalised.png",
            "cm_normalised_pdf": out_dir / f"{stem}_confusion_matrix_normalised.pdf",
            "metrics": out_dir / f"metrics{tag}.json"}


def write_report(metrics: dict[str, Any], out_dir: Path, model_name: str, class_names: Sequence[str],
                 title: str = "", split: str = "test") -> list[Path]:
    """Write the text log, the confusion-matrix plots (PNG and PDF) and ``metrics.json``, atomically.

    Args:
        metrics: From :func:`score` (plus ``model`` and ``split``).
        out_dir: The report folder (created if needed).
        model_name: Prefix of the file names.
        class_names: Names of the scored classes (the confusion matrix order).
        title: First lines of the log (default: model and split).
        split: The scored split (it names the files: :func:`report_paths`).

    Returns:
        The files written.
    """
    paths = report_paths(Path(out_dir), model_name, split)
    title = title or f"model: {model_name}   split: {metrics.get('split', '?')}"
    write_text_atomic(paths["log"], format_report(metrics, title))
    for normalised in (False, True):
        key = "cm_normalised" if normalised else "cm"
        matrix = np.asarray(metrics["confusion_matrix_normalised" if normalised else "confusion_matrix"])
        _plot_confusion_matrix(matrix, class_names, normalised, f"{model_name} ({metrics.get('split', '')})",
                               [paths[f"{key}_png"], paths[f"{key}_pdf"]])
    write_json_atomic(paths["metrics"], metrics)
    return list(paths.values())


def _plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], normalised: bool, title: str,
                           outputs: Sequence[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    fig, ax = plt.subplots(figsize=(2.2 + 0.9 * n, 1.6 + 0.8 * n))
    try:
        shown = matrix if normalised else matrix.astype(np.float64)
        image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalised else max(float(shown.max()), 1.0))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right")
        ax.set_yticks(range(n), labels=list(class_names))
        ax.set_xlabel("predicted class")
        ax.set_ylabel("ground-truth class")
        ax.set_title(("normalised confusion matrix: " if normalised else "confusion matrix: ") + title)
        limit = (1.0 if normalised else max(float(matrix.max()), 1.0)) / 2
        for (row, col), value in np.ndenumerate(matrix):
            ax.text(col, row, f"{value:.2f}" if normalised else f"{int(value)}", ha="center", va="center",
                    fontsize=7, color="white" if value > limit else "black")
        fig.tight_layout()
        for path in outputs:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=150)
    finally:
        plt.close(fig)
