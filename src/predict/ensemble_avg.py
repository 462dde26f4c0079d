"""Score the mean softmax of several runs of one model (an ensemble), loading one model at a time.

Usage: python ensemble_avg.py MODEL_NAME --runs 134 [--split test|valid] [--config CONFIG]
MODEL_NAME is the runs' base name (baseline_cnn, lstm_fixed_seq ...); --runs 134 means runs 01,
03 and 04 (one digit per run, as the original), --runs 1,3,12 lists numbers. The report goes to
reports/logs_and_plots/{MODEL_NAME}_ensemble_{RUNS}/, as metrics.py writes it.
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.config import Config, load_config
from helpers.errors import InputError, run_cli
from helpers.runs import check_model_name, ensemble_name, model_path, parse_runs


def evaluate_ensemble(base_name: str, runs: Sequence[int], split: str = "test",
                      config: Config | str | Path | None = None,
                      say: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the mean softmax of runs ``{base_name}_{NN}`` and write the report.

    Args:
        base_name: The runs' base name.
        runs: Run numbers.
        split: ``test`` or ``valid``.
        config: A loaded config, a config path, or None for the default config.
        say: Where the console table goes.

    Returns:
        The metrics (the content of ``metrics.json``).

    Raises:
        InputError: Unknown runs, models that do not fit the data or differ in kind.
    """
    from helpers.evaluation import (
        check_model_fits,
        mean_softmax_predictions,
        predict_probabilities,
        run_level,
        run_normaliser,
        score_and_report,
        split_parts,
    )
    from helpers.models import load_model

    if not isinstance(config, Config):
        config = load_config(config)
    base = check_model_name(base_name)
    names = [model_path(config.models_root, f"{base}_{n:02d}").stem for n in runs]  # all exist before any work
    levels = {name: run_level(config, name) for name in names}
    if len(set(levels.values())) != 1:
        raise InputError(f"runs {names} were trained on different processing levels {sorted(set(levels.values()))}")
    level = levels[names[0]]
    normalisers = {name: run_normaliser(config, name, level) for name in names}
    state: dict[str, Any] = {}
    truth: dict[str, Any] = {}

    def loader(name: str) -> Callable[[], tuple[str, Any]]:
        return lambda: (name, load_model(config.models_root / f"{name}.keras"))

    def predict(loaded: tuple[str, Any]):
        name, model = loaded
        sequence = check_model_fits(model, config, level, name)
        if state.setdefault("sequence", sequence) != sequence:
            raise InputError(f"runs {names} mix FCN and sequence models")
        if "parts" not in state:
            state["parts"] = split_parts(config, split, level, sequence)
        y_true, probabilities = predict_probabilities(model, state["parts"], normalisers[name])
        truth["y"] = y_true
        say(f"{name}: predicted {len(y_true)} {'sequences' if sequence else 'tiles'}")
        return probabilities

    y_pred, _ = mean_softmax_predictions((loader(name) for name in names), predict)
    ensemble = ensemble_name(base, runs)
    title = (f"ensemble: {ensemble} (mean softmax of {', '.join(names)})   split: {split}   level: {level}   "
             f"dates: {', '.join(sorted(config.evaluation))}")
    return score_and_report(config, ensemble, truth["y"], y_pred, split, title, say)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_name", metavar="MODEL_NAME", help="base name of the runs, e.g. baseline_cnn")
    parser.add_argument("--runs", required=True, help="run digits (134 = runs 01, 03, 04) or numbers 1,3,12")
    parser.add_argument("--split", choices=("test", "valid"), default="test", help="tiles to score (default test)")
    parser.add_argument("--config", default=None,
                        help="study-area TOML, relative to the repository root (default configs/demo.toml)")
    args = parser.parse_args(argv)
    runs = parse_runs(args.runs)
    evaluate_ensemble(args.model_name, runs, args.split, config=load_config(args.config))
    return 0


if __name__ == "__main__":
    run_cli(main)
