"""The three training scripts' procedures: FCN, FCN+LSTM on fixed sequences, on random sequences."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from helpers.config import Config, load_config
from helpers.errors import InputError
from helpers.io import write_json_atomic
from helpers.runs import model_path, newest_model
from helpers.training import (
    RunPaths,
    add_training_arguments,
    check_class_ids,
    compile_model,
    configure_devices,
    fit_and_save,
    make_strategy,
    plan_run,
    run_paths,
    save_run_metadata,
    setting,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines; its warnings and errors stay

FCN_SCRIPT = "baseline_cnn"
FIXED_SCRIPT = "lstm_fixed_seq"
RANDOM_SCRIPT = "lstm_random_seq"


def _print(message: str) -> None:
    print(message, flush=True)


def build_parser(script: str, description: str) -> argparse.ArgumentParser:
    """Flags of a training script."""
    parser = argparse.ArgumentParser(description=description)
    add_training_arguments(parser, 64 if script == FCN_SCRIPT else 16)
    if script == FCN_SCRIPT:
        parser.add_argument("--width", type=float, default=1.0,
                            help="filter-count multiplier of the U-Net (1.0 = the paper's 29,068,744 parameters)")
    else:
        parser.add_argument("--base-model", default=None,
                            help=f"trained FCN to start from (default: the newest {FCN_SCRIPT}_NN)")
    if script == RANDOM_SCRIPT:
        parser.add_argument("--timesteps", type=int, default=None,
                            help="dates per sequence, drawn from the training pool (default: training.timesteps, 6)")
    return parser


def _normaliser(config: Config, level: str, dates: Sequence[str], base: RunPaths | None):
    """The run's normalisation: the base model's (LSTM), else the config's constants or computed ones (FCN)."""
    from helpers.generators import Normaliser, load_tiles, normaliser_for

    if base is not None and base.normalisation.is_file():
        data = json.loads(base.normalisation.read_text(encoding="utf-8"))
        return Normaliser(data["mean"], data["std"])
    train_sets = [load_tiles(config, date, "train", level) for date in dates]
    return normaliser_for(config, level, train_sets, None)


def train(script: str, description: str, argv: Sequence[str] | None = None, say=_print,
          extra_callbacks: list | None = None, evaluate: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Parse the flags of a training script and run it.

    Args:
        script: ``baseline_cnn``, ``lstm_fixed_seq`` or ``lstm_random_seq``.
        description: ``--help`` text.
        argv: Arguments (default: the command line).
        say: Printer.
        extra_callbacks: Additional Keras callbacks (tests).
        evaluate: Called as ``evaluate(run, "test", model=model, config=config)`` after training
            unless ``--no-eval`` (the scripts pass ``metrics.get_metrics_and_cm``).

    Returns:
        The training summary (see :func:`helpers.training.fit_and_save`).
    """
    args = build_parser(script, description).parse_args(argv)
    config = load_config(args.config)
    n_classes = check_class_ids(config)
    paths, flags, resuming = plan_run(config, script, args, say)
    level = config.check_level(flags.get("level"))
    configure_devices(flags.get("logical_cpus"))

    import keras

    seed = flags.get("seed")
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    epochs = setting(flags, config, "epochs", "max_epochs", 1000)
    steps = setting(flags, config, "steps", "steps_per_epoch", 100)
    val_steps = setting(flags, config, "val_steps", "validation_steps", 5)
    base_lr = setting(flags, config, "learning_rate", "learning_rate", 1e-3)
    augment = not flags.get("no_augment", False)
    n_bands = len(config.bands(level))
    strategy = make_strategy(flags.get("strategy", "default"))

    from helpers import generators
    from helpers.models import build_fcn_lstm, build_unet, is_sequence_model, load_model, model_bands

    if script == FCN_SCRIPT:
        batch = setting(flags, config, "batch_size", "batch_size_fcn", 64)
        dates = config.fcn_training
        normaliser = _normaliser(config, level, dates, None)
        common = {"normaliser": normaliser, "level": level}
        train_data = generators.SingleTileGenerator(config, dates, "train", batch_size=batch, steps=steps,
                                                    augment=augment, seed=seed, **common)
        val_data = generators.SingleTileGenerator(config, dates, "valid", batch_size=batch, steps=val_steps,
                                                  augment=False, seed=None if seed is None else seed + 1, **common)
        with strategy.scope():
            model = build_unet(n_bands=n_bands, n_classes=n_classes, width=float(flags.get("width", 1.0)),
                               tile_size=None)
            compile_model(model, config, base_lr)
        min_delta, baseline = 0.01, 0.5
    else:
        batch = setting(flags, config, "batch_size", "batch_size_lstm", 16)
        base_name = flags.get("base_model") or newest_model(config.models_root, FCN_SCRIPT)
        if base_name is None:
            raise InputError(f"{config.models_root}: no trained {FCN_SCRIPT} model; train one first or give "
                             f"--base-model")
        flags["base_model"] = base_name
        base_path = model_path(config.models_root, base_name)
        base_paths = run_paths(config, base_path.stem)
        if script == FIXED_SCRIPT:
            dates = config.fixed_sequence
            timesteps = len(dates)
        else:
            dates = config.training_pool
            timesteps = int(setting(flags, config, "timesteps", "timesteps", 6))
            if not 1 <= timesteps <= len(dates):
                raise InputError(f"--timesteps {timesteps}: must be in 1..{len(dates)} (the training pool)")
        normaliser = _normaliser(config, level, dates, base_paths)
        common = {"normaliser": normaliser, "level": level}
        seed_val = None if seed is None else seed + 1
        if script == FIXED_SCRIPT:
            train_data = generators.FixedSequenceGenerator(config, dates, "train", batch_size=batch, steps=steps,
                                                           augment=augment, seed=seed, **common)
            val_data = generators.FixedSequenceGenerator(config, dates, "valid", batch_size=batch, steps=val_steps,
                                                         augment=False, seed=seed_val, **common)
        else:
            train_data = generators.RandomSequenceGenerator(config, dates, timesteps, "train", batch_size=batch,
                                                            steps=steps, augment=augment, seed=seed, **common)
            val_data = generators.RandomSequenceGenerator(config, dates, timesteps, "valid", batch_size=batch,
                                                          steps=val_steps, augment=False, seed=seed_val, **common)
        with strategy.scope():
            fcn = load_model(base_path)
            if is_sequence_model(fcn) or model_bands(fcn) != n_bands or fcn.output_shape[-1] != n_classes:
                raise InputError(f"{base_path}: base model of the wrong shape (input {fcn.input_shape}, output "
                                 f"{fcn.output_shape}); expected an FCN with {n_bands} bands and {n_classes} classes")
            model = build_fcn_lstm(fcn, timesteps=timesteps, tile_size=config.tile_size)
            compile_model(model, config, base_lr)
        min_delta, baseline = 0.001, 0.6
    if not resuming:
        save_run_metadata(config, script, paths, flags)
        write_json_atomic(paths.normalisation, {"mean": [float(v) for v in normaliser.mean],
                                                "std": [float(v) for v in normaliser.std]})
    say(f"{paths.run}: training {script} on {len(dates)} dates, batch {batch}, {steps} steps x up to {epochs} "
        f"epochs, {model.count_params():,} parameters, {strategy.num_replicas_in_sync} replica(s)")
    summary = fit_and_save(model, train_data, val_data, paths, epochs, base_lr, flags.get("patience", 20),
                           min_delta, baseline, flags.get("quiet", False), say, extra_callbacks)
    if evaluate is not None and not flags.get("no_eval", False):
        evaluate(paths.run, "test", model=model, config=config)
    return summary
