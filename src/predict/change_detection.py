"""Change detection: compare a model's class maps of all date combinations with the ground truth.

Robustness measures (this project's definitions; the article's exact formulas are unknown):
stable = all maps equal the GT; robust change = all maps agree on one class other than the
GT's; unstable = the maps disagree. Writes the change map (class 9 where robust change) as
GeoTIFF and PNG, and a JSON and text report; scores robust change against the config's
true-change file when it names one. Name the model as classify.py was given it; the study
area must have ground truth (a classification-only config is refused).

--periods: change between two periods without ground truth instead (config [change] period_a /
period_b, e.g. the 2016 and the 2018 dates; classify them first with classify.py MODEL --period a
and, unless period B is dates.combinations, --period b): stable = every map of both periods
agrees; robust change = all maps of A agree on one class, all maps of B on another (a from-to
matrix in pixels and hectares); unstable = otherwise; pixels not classified in some map are
excluded and counted. Writes {MODEL}_period_change_map.tif/.png and
{MODEL}_period_change_detection.json/.txt, beside the ground-truth mode's outputs.

Usage: python change_detection.py (MODEL_NAME | --model PATH) [--periods] [--config CONFIG]
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.config import load_config
from helpers.core.errors import run_cli
from helpers.train.run_record import add_model_arguments, model_spec


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, "a classified run or ensemble, e.g. lstm_fixed_seq_01")
    parser.add_argument("--periods", action="store_true",
                        help="compare period A with period B (config [change]) instead of the maps with the GT")
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    args = parser.parse_args(argv)
    spec = model_spec(args)
    config = load_config(args.config)

    if args.periods:
        from helpers.predict.period_reports import detect_period_changes, format_period_report

        print(format_period_report(detect_period_changes(config, spec)))
        return 0
    from helpers.predict.change_reports import detect_changes, format_report

    print(format_report(detect_changes(config, spec)))
    return 0


if __name__ == "__main__":
    run_cli(main)
