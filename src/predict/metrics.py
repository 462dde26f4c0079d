"""Score a trained model on the test (or validation) tiles: accuracy, kappa, F1, confusion matrices.

Usage: python metrics.py MODEL_NAME [--split test|valid] [--config CONFIG]
Writes reports/logs_and_plots/{MODEL_NAME}/: {MODEL_NAME}_log.txt, the confusion-matrix plots
(PNG and PDF, raw and normalised) and metrics.json. From Python (for example at the end of a
training script): ``get_metrics_and_cm(model_name, split="test", model=model, config=config)``.
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.config import Config, load_config
from helpers.errors import run_cli
from helpers.runs import check_model_name, model_path


def get_metrics_and_cm(model_name: str, split: str = "test", model: Any = None,
                       config: Config | str | Path | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Score a model on a split and write its report.

    Args:
        model_name: The run name (``baseline_cnn_01``); it names the report folder and, when
            ``model`` is None, the model loaded from ``models/{model_name}.keras``.
        split: ``test`` or ``valid``.
        model: An in-memory model (for example just trained); None loads the saved one.
        config: A loaded config, a config path, or None for the default config.
        say: Where the console table goes.

    Returns:
        The metrics (the content of ``metrics.json``).

    Raises:
        InputError: Unknown or non-plain model name, a model that does not fit the data, or
            missing tiles. Nothing is written then.
    """
    from helpers.evaluation import (
        check_model_fits,
        predict_test_split,
        run_level,
        run_normaliser,
        score_and_report,
    )

    if not isinstance(config, Config):
        config = load_config(config)
    if split not in ("test", "valid"):
        raise ValueError(f"split must be 'test' or 'valid', not {split!r}")
    if model is None:
        path = model_path(config.models_root, model_name)
        name = path.stem
        level = run_level(config, name)
        normaliser = run_normaliser(config, name, level)  # before loading: a bad file fails fast
        from helpers.models import load_model

        model = load_model(path)
    else:
        name = check_model_name(model_name)
        level = run_level(config, name)
        normaliser = run_normaliser(config, name, level)
    check_model_fits(model, config, level, name)
    y_true, y_pred = predict_test_split(model, config, split, normaliser, level, model_name=name)
    title = f"model: {name}   split: {split}   level: {level}   dates: {', '.join(sorted(config.evaluation))}"
    return score_and_report(config, name, y_true, y_pred, split, title, say)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_name", metavar="MODEL_NAME", help="run name under models/, e.g. baseline_cnn_01")
    parser.add_argument("--split", choices=("test", "valid"), default="test", help="tiles to score (default test)")
    parser.add_argument("--config", default=None,
                        help="study-area TOML, relative to the repository root (default configs/demo.toml)")
    args = parser.parse_args(argv)
    get_metrics_and_cm(args.model_name, args.split, config=load_config(args.config))
    return 0


if __name__ == "__main__":
    run_cli(main)
