"""Train a per-pixel random forest on the deep models' training tiles (a baseline; not the paper's).

--kind mono (default): one date's bands per pixel, the pixels of every date of
dates.fcn_training pooled, as the FCN is trained; runs random_forest_mono_NN.
--kind multi: the bands of the dates of dates.fixed_sequence stacked per pixel, as the
fixed-sequence FCN+ConvLSTM sees them; runs random_forest_multi_NN (the random-sequence model's
variable sequences have no forest of their own: a forest needs one feature layout).

scikit-learn's RandomForestClassifier(n_estimators=100, min_samples_leaf=2) with the deep
models' class weights (inverse pixel counts of the class table, unclassifiable 0) on at most
--max-pixels training pixels drawn at random (--seed). Raw band values: a forest needs no
normalisation. Saved as models/{RUN}.skops (skops, run record inside) with the config copy and
the flags; metrics.py, classify.py and change_detection.py take the run like any other.

Usage: python random_forest.py [--kind mono|multi] [--config CONFIG] [--max-pixels N] [--trees N]
       [--min-samples-leaf N] [--n-jobs N] [--seed N] [--no-eval]
After training it evaluates the forest on the test split (metrics.py) unless --no-eval.
"""

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.errors import run_cli
from helpers.predict.evaluation import get_metrics_and_cm
from helpers.train.forest import plan_forest_run, train_forest
from helpers.train.training import Say, say_flushed


def quiet(message: str) -> None:
    """A printer for --quiet."""
    del message


def train(argv: Sequence[str] | None = None, say: Say = say_flushed) -> dict:
    """Train one forest run, save it and score it on the test split.

    Args:
        argv: Arguments (default: the command line).
        say: Printer.

    Returns:
        The training summary.
    """
    run = plan_forest_run(__doc__.splitlines()[0], argv, say)
    if run.flags.get("quiet"):
        run.say = quiet
    model, summary = train_forest(run)
    if not run.flags.get("no_eval"):
        get_metrics_and_cm(run.run, "test", model=model, config=run.config, say=say)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    train(argv)
    return 0


if __name__ == "__main__":
    run_cli(main)
