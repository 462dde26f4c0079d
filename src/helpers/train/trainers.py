"""The common parts of the three training scripts: starting a run, its dates, the base FCN, the evaluation.

Each script in ``src/models/`` reads like the original: its data generators, its model, loss
and optimiser, its callbacks and the fit; what they share is here and in
:mod:`helpers.train.training` (flags, defaults, seeds) and :mod:`helpers.train.fitting` (the fit and the
saved run). Nothing here branches on the script.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.core.config import load_config
from helpers.core.errors import InputError
from helpers.train.backends import check_batch_split, configure_devices, make_strategy, seed_everything
from helpers.train.normalisation import Normaliser, normaliser_for
from helpers.train.runs import newest_model
from helpers.train.tile_cache import load_tiles
from helpers.train.training import (
    COMMON_SETTINGS,
    Say,
    Setting,
    TrainingRun,
    build_parser,
    check_class_ids,
    check_seed,
    plan_run,
    require_training_data,
    say_flushed,
    wants_determinism,
)

if TYPE_CHECKING:
    import argparse

    from helpers.train.run_record import ModelSpec, RunRecord

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines; its warnings and errors stay

FCN_SCRIPT = "baseline_cnn"
FIXED_SCRIPT = "lstm_fixed_seq"
RANDOM_SCRIPT = "lstm_random_seq"
SCRIPTS: tuple[str, ...] = (FCN_SCRIPT, FIXED_SCRIPT, RANDOM_SCRIPT)
"""The training scripts (``src/models/{script}.py``), in the order the demo runs them."""


def start_run(script: str, description: str, argv: Sequence[str] | None, batch: Setting,
              settings: Sequence[Setting] = (), arguments: Callable[[argparse.ArgumentParser], None] | None = None,
              say: Say = say_flushed) -> TrainingRun:
    """Parse a training script's flags, check them and the config, name the run and seed everything.

    Nothing is written: a bad flag, config value or missing ground truth is an
    :class:`~helpers.core.errors.InputError` before any file exists.

    Args:
        script: The script's name (``baseline_cnn``), which names its runs.
        description: ``--help`` text.
        argv: Arguments (default: the command line).
        batch: The script's batch-size setting (:data:`helpers.train.training.FCN_BATCH` or ``LSTM_BATCH``).
        settings: The script's own settings (``WIDTH``, ``TIMESTEPS``).
        arguments: Adds the script's other flags to the parser (``--base-model``).
        say: Printer.

    Returns:
        The planned run (for ``--resume``: the interrupted one, with its saved flags).
    """
    all_settings = (*COMMON_SETTINGS, batch, *settings)
    parser = build_parser(description, all_settings)
    if arguments is not None:
        arguments(parser)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    require_training_data(config)
    check_class_ids(config)
    paths, flags, resuming = plan_run(config, script, args, say)
    level = config.check_level(flags.get("level"))
    values = {setting.dest: setting.resolve(flags, config) for setting in all_settings}
    seed = check_seed(flags.get("seed"))
    deterministic = wants_determinism(flags, config)
    configure_devices(flags.get("logical_cpus"))
    determinism = seed_everything(seed, deterministic)
    from helpers.train.models import set_precision

    set_precision(values["precision"])  # before any model is built or loaded
    strategy = make_strategy(flags.get("strategy") or "default")
    check_batch_split(int(values["batch_size"]), strategy.num_replicas_in_sync)
    return TrainingRun(script=script, config=config, paths=paths, flags=flags, resuming=resuming, level=level,
                       settings=values, seed=seed, deterministic=deterministic, determinism=determinism,
                       strategy=strategy, say=say)


def training_dates(run: TrainingRun, key: str, minimum: int = 1) -> tuple[str, ...]:
    """The dates of a ``[dates]`` key the script trains on, at least ``minimum`` of them.

    Args:
        run: The run.
        key: ``dates.fcn_training``, ``dates.fixed_sequence`` or ``dates.training_pool``.
        minimum: How many the script needs (2 for a sequence).

    Raises:
        InputError: ``<config>: lstm_fixed_seq.py needs at least 2 dates in dates.fixed_sequence (it has 1)``.
    """
    dates = tuple(getattr(run.config, key.removeprefix("dates.")))
    if len(dates) < minimum:
        raise InputError(f"{run.config.source}: {run.script}.py needs at least {minimum} "
                         f"date{'s' if minimum > 1 else ''} in {key} (it has {len(dates)})")
    return dates


def random_sequence_dates(run: TrainingRun) -> tuple[tuple[str, ...], int]:
    """The pool to draw sequences from and the dates per sequence (``--timesteps``).

    Raises:
        InputError: If the pool holds fewer dates than a sequence needs (naming ``dates.training_pool``).
    """
    timesteps = int(run.settings["timesteps"])
    pool = run.config.training_pool
    if len(pool) < timesteps:
        raise InputError(f"{run.config.source}: {run.script}.py draws {timesteps} dates per sequence, but "
                         f"dates.training_pool has {len(pool)}; add dates to dates.training_pool or give "
                         f"--timesteps {max(len(pool), 2)}" + (" or fewer" if len(pool) > 2 else ""))
    return pool, timesteps


def training_normaliser(run: TrainingRun, dates: Sequence[str]) -> Normaliser:
    """An FCN's band normalisation: the config's constants, or mean/std of the dates' training tiles."""
    computed = run.config.norm_mean is None
    train_sets = [load_tiles(run.config, date, "train", run.level) for date in dates] if computed else []
    return normaliser_for(run.config, run.level, train_sets, None)


# ---------------------------------------------------------------------- the base FCN of the sequence models
def add_base_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--base-model``: the trained FCN a sequence model starts from."""
    parser.add_argument("--base-model", default=None, metavar="RUN",
                        help=f"trained FCN to start from: a run name in the config's models folder, or a path to "
                             f"a .keras file or run folder (default: the newest {FCN_SCRIPT}_NN)")


def base_model_spec(text: str) -> ModelSpec:
    """A ``--base-model`` value as a run name (``str``) or a path (``Path``).

    A value with a path separator, an existing ``.keras`` file as given, or an existing folder
    is a path; anything else is a run name in the config's ``models/`` folder.
    """
    candidate = Path(text).expanduser()
    if "/" in text or "\\" in text or candidate.is_dir() or (text.endswith(".keras") and candidate.is_file()):
        return candidate
    return text


def load_base_fcn(run: TrainingRun) -> RunRecord:
    """The run record of the FCN a sequence model starts from (``--base-model``, else the newest FCN run).

    The record, stored in the FCN's ``.keras`` file, gives the normalisation the FCN was trained
    with; it is never recomputed. The chosen base is written into the run's flags.

    Raises:
        InputError: No FCN run, an unknown or damaged one, or one trained on another level,
            other bands or another class table than this config's.
    """
    from helpers.train.run_record import load_run

    spec = run.flags.get("base_model") or newest_model(run.config.models_root, FCN_SCRIPT)
    if spec is None:
        raise InputError(f"{run.config.models_root}: no trained {FCN_SCRIPT} model; train one first or give "
                         "--base-model")
    run.flags["base_model"] = spec
    record = load_run(base_model_spec(spec), run.config)
    record.check_fits(run.config, run.level)
    return record


def base_fcn_model(base: RunRecord, run: TrainingRun) -> Any:
    """Load the base FCN (call it in the strategy's scope) and check that it is an FCN.

    Its bands and classes need no check here: :func:`load_base_fcn` checked the record against
    the config, and :meth:`RunRecord.load_model` the model against its record.

    Raises:
        InputError: If the file holds a sequence model.
    """
    from helpers.train.models import is_sequence_model

    fcn = base.load_model()
    if is_sequence_model(fcn):
        raise InputError(f"{base.model_path}: base model of the wrong shape (input {fcn.input_shape}, output "
                         f"{fcn.output_shape}); expected an FCN with {run.n_bands} bands and {run.n_classes} classes")
    return fcn


# ---------------------------------------------------------------------- after the fit
def evaluate_test_split(run: TrainingRun, model: Any, score: Callable[..., dict[str, Any]]) -> dict[str, Any] | None:
    """Score the trained model on the test split, as ``metrics.py`` does (unless ``--no-eval``).

    Args:
        run: The finished run.
        model: The trained model (in memory).
        score: ``helpers.predict.evaluation.get_metrics_and_cm``, passed in by the script so that
            the training package never imports the prediction package.

    Returns:
        The metrics, or None with ``--no-eval``.
    """
    if run.flags.get("no_eval"):
        return None
    return score(run.run, "test", model=model, config=run.config, say=run.say)
