"""Benchmark: the demo's three models trained with seeds 1, 2 and 3, and the spread of their test-split scores.

One demo run says little: its validation accuracy jumps between epochs, and the test scores
of two seeds differ. For every seed this trains ``baseline_cnn.py`` with the Makefile's
``DEMO_FCN`` settings, then ``lstm_fixed_seq.py`` and ``lstm_random_seq.py`` from that seed's
FCN with ``DEMO_LSTM`` (their ``--seed`` replaced by the seed), each script in its own process
as ``make demo`` runs it. Each script scores its model on the test split when it has trained
(``metrics.json``); with ``--maps`` every model also classifies the new dates
(``classify.py --combination all``) and runs ``change_detection.py``. The table gives, per
model, the mean, the range (min-max) and the standard deviation over the seeds of the overall
accuracy, Cohen's kappa and the F1 scores of grassland and farmland.

Everything is written to a work folder (per seed: ``models/``, ``reports/`` and a ``data/``
folder whose inputs are links to the study area's), never to ``models/demo`` or
``reports/demo``. A run whose model and metrics exist is not trained again, so a benchmark
given the same ``--workdir`` continues where it stopped.

Data: the demo's processed training tiles (``make demo`` with ``configs/demo.toml``, or the
study area of ``--config``) when they exist; otherwise a demo study area is generated and
pre-processed in the work folder (the demo's size; 168 px with ``--quick``, where dates without
tiles in a split leave the lists).

Usage:
    python benchmarks/demo_seeds.py [--quick] [--seeds 1 2 3] [--workdir DIR] [--maps] [--config CONFIG]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import fmt_seconds, print_table, result_line, work_folder

from helpers.core.config import SPLITS, Config, load_config
from helpers.core.paths import REPO_ROOT
from helpers.train.trainers import FCN_SCRIPT, SCRIPTS

DEMO_CONFIG = REPO_ROOT / "configs" / "demo.toml"
MAKEFILE = REPO_ROOT / "Makefile"
QUICK_FCN = ["--steps", "4", "--val-steps", "2", "--epochs", "2"]
QUICK_LSTM = ["--steps", "2", "--val-steps", "1", "--epochs", "1"]
QUICK_SIZE = 168
SCORES = {"OA": ("overall_accuracy", None), "kappa": ("kappa", None), "F1 grassland": ("f1", "Grassland"),
          "F1 farmland": ("f1", "Farmland")}
"""Table column -> (metrics.json key, class name for per-class keys)."""
KEEP_OUT = {"classified", ".lock"}
"""Entries of the study area's ``processed/`` that a seed's data folder gets of its own (outputs)."""


# ---------------------------------------------------------------------- settings
def makefile_settings(makefile: Path = MAKEFILE) -> dict[str, list[str]]:
    """The demo's training flags, ``DEMO_FCN`` and ``DEMO_LSTM``, read from the Makefile (written once, there)."""
    text = makefile.read_text(encoding="utf-8")
    found = {}
    for name in ("DEMO_FCN", "DEMO_LSTM"):
        match = re.search(rf"^{name}\s*:=\s*(.+)$", text, re.MULTILINE)
        if match is None:
            raise SystemExit(f"error: {makefile}: no {name} := ... line")
        found[name] = shlex.split(match.group(1))
    return found


def with_seed(flags: Sequence[str], seed: int, quick: Sequence[str] = ()) -> list[str]:
    """The flags with ``--seed`` set to ``seed`` and the ``quick`` flags replacing the same flags."""
    replaced = {"--seed": str(seed), **dict(zip(quick[::2], quick[1::2], strict=True))}
    out, items = [], list(flags)
    while items:
        flag = items.pop(0)
        value = items.pop(0) if items and not items[0].startswith("--") else None
        if flag in replaced:
            value = replaced.pop(flag)
        out += [flag] + ([value] if value is not None else [])
    for flag, value in replaced.items():
        out += [flag, value]
    return out


# ---------------------------------------------------------------------- data
def _set_roots(text: str, data: Path, models: Path, reports: Path) -> str:
    for key, value in (("data_root", data), ("models_root", models), ("reports_root", reports)):
        text, count = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {json.dumps(str(value))}", text)
        if count != 1:
            raise SystemExit(f"error: {DEMO_CONFIG}: expected one '{key} = ...' line")
    return text


def _has_tiles(config: Config, date: str) -> bool:
    """Whether every split of a date holds tiles."""
    folders = [config.tiles_dir(date, None, split) for split in SPLITS]
    return all(folder.is_dir() and any(folder.glob("*.tif")) for folder in folders)


def study_area(folder: Path, quick: bool, maps: bool, source: Path = DEMO_CONFIG) -> tuple[Path, str]:
    """The study area to train on: the config's processed one, else a demo area generated in ``folder``.

    Returns:
        Its config file and ``processed`` (the config's own tiles) or ``generated``.

    Raises:
        SystemExit: If a config other than the demo's has no processed tiles.
    """
    demo = load_config(source)
    if all(_has_tiles(demo, d) for d in demo.training_pool):
        return source, "processed"
    if source.resolve() != DEMO_CONFIG.resolve():
        raise SystemExit(f"error: {source}: the training tiles of dates.training_pool are not all there; "
                         "pre-process the study area first (08a_process_train_batch.py)")
    from helpers.data import pipeline
    from helpers.demo.demo_data import generate_demo
    from helpers.demo.layout import DEFAULT_SIZE

    area = folder / "area"
    path = area / "config.toml"
    text = _set_roots(DEMO_CONFIG.read_text(encoding="utf-8"), area / "data", area / "models", area / "reports")
    area.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    if not (area / "generated").is_file():
        print(f"no processed demo data ({demo.data_root}): generating a demo study area in {area}", flush=True)
        generate_demo(config, seed=1, size=QUICK_SIZE if quick else DEFAULT_SIZE, overwrite=True)
        (area / "generated").write_text("", encoding="utf-8")
    # both skip the dates that are already done
    pipeline.process_batch(config, config.training_pool, None, "TRAIN", say=lambda message: None)
    if maps:
        pipeline.process_batch(config, config.new, None, "NEW", say=lambda message: None)
    for date in [d for d in config.training_pool if not _has_tiles(config, d)]:  # small areas only
        text = re.sub(rf'"{date}",\s*|,\s*"{date}"', "", text)
    path.write_text(text, encoding="utf-8")
    return path, "generated"


def seed_config(source: Path, folder: Path) -> Path:
    """A config for one seed: its own models/, reports/ and data/ (inputs linked to the study area's)."""
    area = load_config(source)
    data = folder / "data"
    (data / "processed").mkdir(parents=True, exist_ok=True)
    links = [(data / "raw", area.raw_dir)]
    if area.processed_dir.is_dir():
        links += [(data / "processed" / p.name, p) for p in area.processed_dir.iterdir() if p.name not in KEEP_OUT]
    for link, target in links:
        if not link.is_symlink() and not link.exists():
            link.symlink_to(target.resolve(), target_is_directory=target.is_dir())
    path = folder / "config.toml"
    text = _set_roots(source.read_text(encoding="utf-8"), data, folder / "models", folder / "reports")
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------- runs
def run_step(args: list[str], log: Path) -> float:
    """Run a script (its output appended to ``log``); return its wall time.

    Raises:
        SystemExit: If it fails (with the end of its output).
    """
    started = time.perf_counter()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {shlex.join(args)}\n")
        handle.flush()
        result = subprocess.run([sys.executable, *args], stdout=handle, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        tail = log.read_text(encoding="utf-8").splitlines()[-15:]
        raise SystemExit(f"error: {args[0]} failed (exit {result.returncode}); end of {log}:\n" + "\n".join(tail))
    return time.perf_counter() - started


def train_seed(config_path: Path, seed: int, settings: dict[str, list[str]], quick: bool, maps: bool,
               log: Path) -> dict[str, dict]:
    """Train and score the three models of one seed; return each run's metrics (and change report)."""
    config = load_config(config_path)
    results: dict[str, dict] = {}
    for script in SCRIPTS:
        run = f"{script}_01"
        report = config.report_dir(run)
        fcn = script == FCN_SCRIPT
        flags = with_seed(settings["DEMO_FCN" if fcn else "DEMO_LSTM"], seed, (QUICK_FCN if fcn else QUICK_LSTM)
                          if quick else ())
        base = [] if fcn else ["--base-model", f"{FCN_SCRIPT}_01"]
        wall = None
        if not (config.models_root / f"{run}.keras").is_file():
            for leftover in config.models_root.glob(f"{run}*") if config.models_root.is_dir() else []:
                raise SystemExit(f"error: {leftover}: a run of an earlier, unfinished benchmark; delete "
                                 f"{config.models_root} (or use another --workdir) and start again")
            wall = run_step([f"src/models/{script}.py", "--config", str(config_path), *flags, *base, "--quiet"], log)
        if not (report / "metrics.json").is_file():  # trained, but its evaluation did not finish
            run_step(["src/predict/metrics.py", run, "--config", str(config_path)], log)
        results[script] = {"metrics": json.loads((report / "metrics.json").read_text(encoding="utf-8")),
                           "summary": json.loads((report / f"{run}_training_summary.json").read_text("utf-8")),
                           "wall_s": wall}
        if maps:
            change = report / f"{run}_change_detection.json"
            if not change.is_file():
                run_step(["src/predict/classify.py", run, "--combination", "all", "--config", str(config_path)], log)
                run_step(["src/predict/change_detection.py", run, "--config", str(config_path)], log)
            results[script]["change"] = json.loads(change.read_text(encoding="utf-8"))
        print(f"  seed {seed} {run}: OA {results[script]['metrics']['overall_accuracy']:.4f}"
              + ("" if wall is None else f" ({fmt_seconds(wall)})"), flush=True)
    return results


# ---------------------------------------------------------------------- table
def score_of(metrics: dict, key: str, name: str | None) -> float:
    """One score of a metrics.json (per-class ones by class name)."""
    return float(metrics[key] if name is None else metrics["per_class"][name][key])


def spread(values: Sequence[float]) -> tuple[float, float, float, float]:
    """Mean, min, max and (sample) standard deviation (0 for one value)."""
    return (statistics.fmean(values), min(values), max(values),
            statistics.stdev(values) if len(values) > 1 else 0.0)


def report(results: dict[int, dict[str, dict]], maps: bool) -> dict[str, object]:
    """Print the table of mean, range and std per model and score; return the RESULT figures."""
    seeds = sorted(results)
    columns = dict(SCORES)
    if maps:
        columns["stable %"] = ("stable", None)
    rows, figures = [], {}
    for script in SCRIPTS:
        for label, (key, name) in columns.items():
            if label == "stable %":
                values = [100 * results[s][script]["change"]["overall"]["stable"] for s in seeds]
            else:
                values = [score_of(results[s][script]["metrics"], key, name) for s in seeds]
            mean, low, high, std = spread(values)
            rows.append([script, label, f"{mean:.4f}", f"{low:.4f} to {high:.4f}", f"{std:.4f}",
                         " ".join(f"{v:.4f}" for v in values)])
            tag = f"{script}_{label.lower().replace(' ', '_').replace('%', 'pct')}"
            figures.update({f"{tag}_mean": mean, f"{tag}_std": std, f"{tag}_range": high - low})
    print()
    headers = ["model", "score (test split)", "mean", "range (min to max)", "std", f"seeds {' '.join(map(str, seeds))}"]
    print_table(headers, rows)
    epochs = {script: [results[s][script]["summary"]["epochs_run"] for s in seeds] for script in SCRIPTS}
    print("  epochs run: " + "; ".join(f"{script} {epochs[script]}" for script in SCRIPTS))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a few steps per model ({' '.join(QUICK_FCN)} / {' '.join(QUICK_LSTM)}): checks that "
                             "it works, measures nothing")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds to train with (default 1 2 3)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the runs (kept; give it again to continue); default: a temporary folder")
    parser.add_argument("--maps", action="store_true", help="also classify the new dates and detect changes")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG,
                        help="study area with processed training tiles and the demo's class names (default "
                             "configs/demo.toml; without its processed data a demo area is generated)")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error("--seeds: distinct seeds >= 0")
    settings = makefile_settings()
    started = time.perf_counter()
    with work_folder(args.workdir, "bench_demo_seeds_") as folder:
        source, data = study_area(folder, args.quick, args.maps, args.config.resolve())
        log = folder / "demo_seeds.log"
        print(f"Data: {data} ({load_config(source).data_root}); work folder {folder}; log {log}")
        print(f"Settings (Makefile): FCN {' '.join(settings['DEMO_FCN'])}; LSTM {' '.join(settings['DEMO_LSTM'])}"
              + (f"; --quick: FCN {' '.join(QUICK_FCN)}, LSTM {' '.join(QUICK_LSTM)}" if args.quick else ""))
        results = {seed: train_seed(seed_config(source, folder / f"seed_{seed}"), seed, settings, args.quick,
                                    args.maps, log) for seed in args.seeds}
        figures = report(results, args.maps)
    wall = time.perf_counter() - started
    print(f"  total {fmt_seconds(wall)}; scores of each model's test split (metrics.py), pixels of the "
          f"unclassifiable class and outside the study area left out")
    print(result_line({**figures, "seeds": len(args.seeds), "data": data, "quick": args.quick, "wall_s": wall}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
