"""What the three training scripts share before the fit: flags and their defaults, run planning, devices, seeds.

The defaults are the original's: weighted categorical cross-entropy, Adam with ``clipnorm=1``,
learning rate 1e-3 for 10 epochs then ``1e-3 * exp(0.1 * (10 - epoch))``, early stopping
(patience 20, best weights restored), 100 steps per epoch and 5 validation steps. Each default
is written once, in a :class:`Setting`, which gives both the flag's help text and the value;
a flag beats the config's ``[training]`` key, which beats the default. Early stopping watches
the masked validation accuracy by default (the original watched ``categorical_accuracy``,
which also scores the pixels the loss ignores; ``--monitor categorical_accuracy`` restores it).

Outputs of a run ``{script}_{NN}`` (see :meth:`helpers.core.layout.StudyAreaLayout.run_paths`):

* ``models/{run}.keras`` with its run record inside (+ ``_config.toml``, ``_flags.json``,
  ``_normalisation.json`` beside it),
* TensorBoard logs in ``reports/logs/{run}/``,
* the training log with wall time and the epoch history in ``reports/logs_and_plots/{run}/``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers.core.config import Config
from helpers.core.errors import ConfigError, InputError
from helpers.core.io import write_json_atomic, write_text_atomic
from helpers.core.layout import RunPaths
from helpers.train.runs import check_model_name, newest_interrupted_run, next_run_name

Say = Callable[[str], None]

MONITORS: tuple[str, ...] = ("masked_accuracy", "categorical_accuracy")
"""Validation metrics early stopping can watch (``val_`` + the name)."""
PRECISIONS: tuple[str, ...] = ("float32", "mixed_bfloat16", "mixed_float16")
"""Keras dtype policies of ``--precision`` (float32: the paper's arithmetic)."""
MAX_SEED = 2**32 - 1
"""Largest ``--seed`` (numpy's legacy generator, seeded by Keras, takes 32 bits)."""


def say_flushed(message: str) -> None:
    """The scripts' printer: flushed at once, so that a log file follows the run."""
    print(message, flush=True)


# ---------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Setting:
    """A training setting: its flag, its ``[training]`` key and its default, written once.

    Attributes:
        flag: The command-line flag (``--epochs``).
        key: The key in the config's ``[training]`` table, or None (flag only).
        default: The paper's value.
        help: What it is (the help text adds the key and the default).
        kind: ``int``, ``float`` or ``str``.
        minimum: Smallest allowed value (inclusive), if any.
        positive: The value must be above 0 (for floats).
        choices: Allowed values (for strings).
        why: Why the minimum (replaces the plain "must be at least N").
    """

    flag: str
    key: str | None
    default: int | float | str
    help: str
    kind: type = int
    minimum: int | None = None
    positive: bool = False
    choices: tuple[str, ...] = ()
    why: str = ""

    @property
    def dest(self) -> str:
        """Attribute name of the parsed flag (``val_steps`` for ``--val-steps``)."""
        return self.flag.lstrip("-").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the flag; its help names the config key and the default."""
        source = f"training.{self.key}, " if self.key else ""
        default = self.default if self.key is None else None  # None: fall back to the config's key
        parser.add_argument(self.flag, type=self.kind, default=default, choices=self.choices or None,
                            help=f"{self.help} (default: {source}{self.default})")

    def resolve(self, flags: dict[str, Any], config: Config) -> Any:
        """The value to train with: the flag, else the config's key, else the default.

        Raises:
            InputError: A flag value that is out of range (naming the flag), or a config value
                of the wrong type or out of range (naming the key).
        """
        value = flags.get(self.dest)
        if value is not None:
            problem = self._problem(value)
            if problem:
                raise InputError(f"{self.flag} {value}: {problem}")
            return value
        if self.key is None or config.training.get(self.key) is None:
            return self.default
        value = config.training[self.key]
        problem = self._type_problem(value) or self._problem(value)
        if problem:
            raise ConfigError(config.source, f"training.{self.key}", f"{value!r}: {problem}")
        return float(value) if self.kind is float else value

    def _type_problem(self, value: Any) -> str:
        expected = {int: (int,), float: (int, float), str: (str,)}[self.kind]
        if isinstance(value, bool) or not isinstance(value, expected):
            return f"must be {'a number' if self.kind is float else 'an integer' if self.kind is int else 'a string'}"
        return ""

    def _problem(self, value: Any) -> str:
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if self.kind is float and not math.isfinite(value):
            return "must be a finite number"
        if self.positive and not value > 0:
            return "must be above 0"
        if self.minimum is not None and value < self.minimum:
            return self.why or f"must be at least {self.minimum}"
        return ""


EPOCHS = Setting("--epochs", "max_epochs", 1000, "maximum epochs", minimum=1,
                 why="must be at least 1 (an untrained model is no run)")
STEPS = Setting("--steps", "steps_per_epoch", 100, "batches per epoch", minimum=1)
VAL_STEPS = Setting("--val-steps", "validation_steps", 5, "validation batches per epoch", minimum=1)
LEARNING_RATE = Setting("--learning-rate", "learning_rate", 1e-3, "initial learning rate", kind=float, positive=True)
PATIENCE = Setting("--patience", "patience", 20, "early-stopping patience in epochs", minimum=0)
MONITOR = Setting("--monitor", "monitor", "masked_accuracy",
                  "validation metric of early stopping and of the best weights: masked_accuracy (labelled, "
                  "classifiable pixels only) or categorical_accuracy (every pixel, as the original)",
                  kind=str, choices=MONITORS)
FCN_BATCH = Setting("--batch-size", "batch_size_fcn", 64, "tiles per batch", minimum=1)
LSTM_BATCH = Setting("--batch-size", "batch_size_lstm", 16, "sequences per batch", minimum=1)
WIDTH = Setting("--width", None, 1.0, "filter-count multiplier of the U-Net (1.0 = the paper's 29,068,744 "
                "parameters)", kind=float, positive=True)
TIMESTEPS = Setting("--timesteps", "timesteps", 6, "dates per sequence, drawn from dates.training_pool",
                    minimum=2, why="a sequence model needs at least 2 timesteps")
INPUT_WORKERS = Setting("--input-workers", "input_workers", 2,
                        "threads that prepare the next batches while the model trains on the current one (Keras "
                        "PyDataset workers; below 2 Keras starts none and a batch is made between two steps, "
                        "which on a GPU is a third of an FCN step); batches are the same whatever the number",
                        minimum=0)
PRECISION = Setting("--precision", "precision", "float32",
                    "arithmetic of the model: float32 (the paper's), mixed_bfloat16 or mixed_float16 (Keras mixed "
                    "precision: 16-bit activations, float32 weights, float32 final softmax)", kind=str,
                    choices=PRECISIONS)
PREFETCH_BATCHES = 8
"""Batches the input workers keep ready (Keras' ``max_queue_size``): about 40 MB of FCN or LSTM batches."""
COMMON_SETTINGS: tuple[Setting, ...] = (EPOCHS, STEPS, VAL_STEPS, LEARNING_RATE, PATIENCE, MONITOR, INPUT_WORKERS,
                                        PRECISION)
"""Settings of every training script (each script adds its batch size and its own)."""


def build_parser(description: str, settings: Sequence[Setting]) -> argparse.ArgumentParser:
    """The flags of a training script: its settings, then what every run has.

    Args:
        description: ``--help`` text.
        settings: The script's settings (:data:`COMMON_SETTINGS`, its batch size, its own).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    parser.add_argument("--level", default=None, help="processing level L1C or L2A (default: the config's)")
    for setting in settings:
        setting.add_to(parser)
    parser.add_argument("--no-augment", action="store_true", help="switch off flips and rotations")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed of the weights, batches, augmentation and date draws: same seed, same "
                             "machine, same run (with TensorFlow's op determinism unless --no-determinism)")
    parser.add_argument("--no-determinism", action="store_true",
                        help="with --seed: skip TensorFlow's op determinism (also training.deterministic = false)")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                        help="tf.distribute strategy (KERAS_BACKEND=tensorflow only): default (one device), mirrored "
                             "(all GPUs of this machine, or its logical CPUs), multiworker (TF_CONFIG cluster); "
                             "under JAX a run uses all devices through keras.distribution")
    parser.add_argument("--logical-cpus", type=int, default=None,
                        help="split the CPU into N logical devices (for --strategy mirrored without GPUs; under JAX "
                             "the run is split across them)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN",
                        help="continue an interrupted run (default: the newest one of this script) with the flags "
                             "it was started with")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress bar")
    parser.add_argument("--no-eval", action="store_true",
                        help="skip the test-split evaluation (metrics.py) after training")
    return parser


def learning_rate_schedule(epoch: int, base: float = 1e-3) -> float:
    """The original schedule: ``base`` for epochs 0-9, then ``base * exp(0.1 * (10 - epoch))``."""
    return base if epoch < 10 else base * math.exp(0.1 * (10 - epoch))


def learning_rate_scheduler(base: float):
    """The Keras callback that applies :func:`learning_rate_schedule` from ``base``."""
    import keras

    return keras.callbacks.LearningRateScheduler(functools.partial(_scheduled, base=base))


def _scheduled(epoch: int, lr: float | None = None, base: float = 1e-3) -> float:
    del lr  # the schedule depends on the epoch only
    return learning_rate_schedule(epoch, base)


# ---------------------------------------------------------------------- run outputs
def plan_run(config: Config, script: str, args: argparse.Namespace, say: Say) -> tuple[RunPaths, dict[str, Any], bool]:
    """Name a new run, or find the interrupted one for ``--resume``. Writes nothing.

    Returns:
        The run's paths, the flags to train with (for ``--resume``: the saved ones) and whether
        the run is resumed.
    """
    flags = {k: v for k, v in vars(args).items() if k != "resume"}
    if not args.resume:
        return config.run_paths(next_run_name(config.models_root, script)), flags, False
    run = newest_interrupted_run(config.models_root, script) if args.resume == "latest" else args.resume
    if run is None:
        raise InputError(f"{config.models_root}: no interrupted {script} run to resume")
    paths = config.run_paths(check_model_name(run))
    if not paths.backup.is_dir() or not paths.flags.is_file():
        raise InputError(f"{paths.backup}: run '{run}' has no backup to resume from (finished or never started)")
    saved = json.loads(paths.flags.read_text(encoding="utf-8"))
    say(f"resuming {run} with the flags it was started with")
    return paths, {**saved["flags"], "quiet": args.quiet}, True


def save_run_metadata(config: Config, script: str, paths: RunPaths, flags: dict[str, Any],
                      settings: dict[str, Any] | None = None) -> None:
    """Save the config and the flags (and the settings they gave) beside the future model, to repeat or resume it."""
    paths.config_copy.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths.config_copy, config.source.read_text(encoding="utf-8"))
    write_json_atomic(paths.flags, {"script": script, "run": paths.run, "config": str(config.source), "flags": flags,
                                    "settings": settings or {}})


def check_class_ids(config: Config) -> int:
    """Number of classes; training needs ids 1..n (channel c-1 is class c)."""
    ids = sorted(config.class_ids)
    if ids != list(range(1, len(ids) + 1)):
        raise InputError(f"{config.source}: training needs class ids 1..{len(ids)}, the class table has {ids}")
    return len(ids)


def require_training_data(config: Config) -> None:
    """Refuse a study area without ground truth (nothing to learn from)."""
    config.require_ground_truth("training")


# ---------------------------------------------------------------------- one run
@dataclass
class TrainingRun:
    """A planned training run: where it writes, what it trains with, and how it reports.

    Built by :func:`helpers.train.trainers.start_run` before anything is written.

    Attributes:
        script: The training script (``baseline_cnn`` ...).
        config: The study area.
        paths: The run's outputs.
        flags: The flags as given (for ``--resume``: as first given).
        resuming: Whether an interrupted run is continued.
        level: Processing level of the tiles.
        settings: Resolved :class:`Setting` values by ``dest`` (``epochs``, ``batch_size`` ...).
        seed: The seed, or None.
        deterministic: Whether repeatable arithmetic was asked for (TensorFlow's op determinism).
        determinism: What :func:`helpers.train.backends.seed_everything` did (``none``, ``seeds``,
            ``op determinism[, serial ops]``, or the XLA backend's).
        strategy: The ``tf.distribute`` strategy to build the model in, or under JAX a
            :class:`helpers.train.backends.DataParallelRun`.
        say: Printer.
    """

    script: str
    config: Config
    paths: RunPaths
    flags: dict[str, Any]
    resuming: bool
    level: str
    settings: dict[str, Any]
    seed: int | None
    deterministic: bool
    determinism: str
    strategy: Any
    say: Say = field(default=say_flushed, repr=False)

    @property
    def run(self) -> str:
        """The run name, ``{script}_{NN}``."""
        return self.paths.run

    @property
    def n_bands(self) -> int:
        """Bands of the level's tiles."""
        return len(self.config.bands(self.level))

    @property
    def n_classes(self) -> int:
        """Output channels (class ids 1..n)."""
        return len(self.config.class_ids)

    @property
    def batch_size(self) -> int:
        """Tiles or sequences per batch."""
        return int(self.settings["batch_size"])

    @property
    def steps(self) -> int:
        """Batches per epoch."""
        return int(self.settings["steps"])

    @property
    def val_steps(self) -> int:
        """Validation batches per epoch."""
        return int(self.settings["val_steps"])

    @property
    def epochs(self) -> int:
        """Maximum epochs."""
        return int(self.settings["epochs"])

    @property
    def learning_rate(self) -> float:
        """Initial learning rate of the schedule."""
        return float(self.settings["learning_rate"])

    @property
    def patience(self) -> int:
        """Early-stopping patience in epochs."""
        return int(self.settings["patience"])

    @property
    def monitor(self) -> str:
        """The validation metric early stopping watches, without ``val_``."""
        return str(self.settings["monitor"])

    @property
    def augment(self) -> bool:
        """Random flips and rotations of the training batches."""
        return not self.flags.get("no_augment", False)

    @property
    def input_options(self) -> dict[str, Any]:
        """The generators' ``PyDataset`` options: worker threads that prepare batches ahead of the step.

        Threads, not processes: the batches are numpy gathers and interpolations that release
        the GIL, and the tile caches are shared without copies. Every batch is keyed by
        ``(seed, epoch, index)`` and Keras' ordered queue hands them out in index order, so a
        seeded run sees the same batches with any number of workers.
        """
        return {"workers": int(self.settings.get("input_workers", INPUT_WORKERS.default)),
                "use_multiprocessing": False, "max_queue_size": PREFETCH_BATCHES}

    @property
    def val_seed(self) -> int | None:
        """Seed of the validation batches (the run's seed + 1, so they differ from the training batches)."""
        return None if self.seed is None else self.seed + 1


# ---------------------------------------------------------------------- seeds (devices: helpers.train.backends)
def check_seed(seed: int | None) -> int | None:
    """Validate ``--seed`` (0 .. 2**32 - 1)."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InputError(f"--seed {seed}: must be in 0..{MAX_SEED}")
    return seed


def wants_determinism(flags: dict[str, Any], config: Config) -> bool:
    """Op determinism unless ``--no-determinism`` or ``training.deterministic = false`` (only with a seed)."""
    if flags.get("seed") is None or flags.get("no_determinism"):
        return False
    value = config.training.get("deterministic", True)
    if not isinstance(value, bool):
        raise ConfigError(config.source, "training.deterministic", f"{value!r}: must be true or false")
    return value


# ---------------------------------------------------------------------- loss, optimiser, metrics
def weighted_loss(config: Config):
    """The original's loss: per-pixel categorical cross-entropy weighted by inverse class frequencies."""
    from helpers.train.losses import WeightedCategoricalCrossentropy, class_weights

    return WeightedCategoricalCrossentropy(class_weights(config).tolist())


def adam(learning_rate: float):
    """The original's optimiser: Adam with ``clipnorm=1``."""
    import keras

    return keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0)


def accuracy_metrics(config: Config) -> list:
    """Keras' ``categorical_accuracy`` (the original's) and the masked accuracy beside it."""
    from helpers.train.losses import MaskedAccuracy, ignored_channels

    return ["categorical_accuracy", MaskedAccuracy(ignored_channels(config))]


def compile_model(model, config: Config, learning_rate: float) -> None:
    """Compile with the original's Adam(clipnorm=1) and weighted cross-entropy, and both accuracies."""
    model.compile(optimizer=adam(learning_rate), loss=weighted_loss(config), metrics=accuracy_metrics(config))
