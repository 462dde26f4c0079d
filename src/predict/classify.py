"""Classify the new dates of every date combination over the whole scene into georeferenced maps.

Usage: python classify.py (MODEL_NAME | --model PATH) [--period a|b] [--combination K|all] [--fast [--compare]]
       [--batch-size N] [--precision float32|mixed_bfloat16|mixed_float16] [--config CONFIG]

MODEL_NAME is a run in the config's models folder; it may name an ensemble, {BASE}_ensemble_134
(runs {BASE}_01, _03 and _04; their maps are averaged). --model PATH takes a .keras file or a run
folder anywhere instead, e.g. a model trained on another study area: its run record gives the
level, bands, class table, normalisation and window size, which must fit this study area (one
error line otherwise). No ground truth is needed. Faithful mode (default): the original's 32x32
windows on a 16-px stride, the centre 16x16 kept, the scene border covered too. --fast: 320x320
windows with a 32-px margin (--compare also runs faithful mode and prints the pixel agreement of
the two class maps). All requested combinations are classified in one pass over the scene, each
date predicted once per window. Writes GeoTIFFs (probabilities, class map, confidence) and PNG
previews under {data_root}/processed/classified/{RUN}/ of this config. --period a (or b) classifies
the date combinations of that change period (config [change] period_a / period_b, for
change_detection.py --periods) instead of dates.combinations: as {RUN}_period_a_{K}_*, except a
combination that is also one of dates.combinations, which shares its maps ({RUN}_combination_{K}_*).
Clouds: each pixel is classified from the dates of its combination that are clear there (the cloud
masks of step 03b; config [clouds] use_in_classification, min_clear_dates); --no-cloud-mask
classifies every pixel from every date, as the original. --precision: the model's arithmetic (default
float32, as the paper; mixed_bfloat16 or mixed_float16 are faster on GPUs, the probabilities stay float32).
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.config import load_config
from helpers.core.errors import InputError, run_cli
from helpers.train.run_record import add_model_arguments, model_spec
from helpers.train.training import PRECISIONS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, "the run (or an ensemble BASE_ensemble_RUNS) to classify with")
    parser.add_argument("--combination", default="all",
                        help="combination number (0-based, as the original) or 'all' (default)")
    parser.add_argument("--period", choices=("a", "b"), type=str.lower, default=None,
                        help="classify the combinations of change period A or B (config [change]) instead")
    parser.add_argument("--fast", action="store_true", help="large windows with a margin instead of 32x32 tiles")
    parser.add_argument("--compare", action="store_true",
                        help="with --fast: also run faithful mode and print the pixel agreement")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per model call (default: automatic)")
    parser.add_argument("--precision", choices=PRECISIONS, default=PRECISIONS[0],
                        help="arithmetic of the model: float32 (default, the paper's) or a Keras mixed precision "
                             "(16-bit activations, float32 weights and probabilities)")
    parser.add_argument("--no-cloud-mask", dest="cloud_masking", action="store_false", default=None,
                        help="use every date at every pixel, clouds or not (default: clouds.use_in_classification)")
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    args = parser.parse_args(argv)
    if args.compare and not args.fast:
        raise InputError("--compare needs --fast (it compares the fast maps with faithful mode)")
    spec = model_spec(args)
    config = load_config(args.config)

    from helpers.predict.classification import classify_model, select_combinations

    ks = select_combinations(config, args.combination, args.period)  # a bad period or number: before Keras
    if args.precision != PRECISIONS[0]:  # float32 is Keras' default: Keras is then not imported before the checks
        from helpers.train.models import set_precision

        set_precision(args.precision)  # before the models are loaded: they are rebuilt with it
    mode = "fast" if args.fast else "faithful"
    results = classify_model(config, spec, ks, mode, batch_size=args.batch_size, progress=None,
                             compare=args.compare, period=args.period, cloud_masking=args.cloud_masking)
    total = sum(r.seconds for r in results)
    print(f"{len(results)} combination(s) in {total:.1f} s; maps in {results[0].files['class'].parent}")
    return 0


if __name__ == "__main__":
    run_cli(main)
