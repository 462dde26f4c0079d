"""Does spatial context carry information? Forests with and without neighbourhood features, an FCN on shuffled tiles.

Two measurements on the tile cache of a study area (the demo by default), both scored on the
test split of the evaluation dates as ``metrics.py`` scores (pixels of GT 0 and of the
unclassifiable class removed):

* **Forests** (monotemporal, the dates of ``dates.fcn_training`` pooled, as
  ``random_forest.py --kind mono``): one on each pixel's 13 band values, one with the 3x3 mean
  of every band added, one with the 3x3 mean and the 5x5 standard deviation (a texture
  measure) added. Neighbourhoods are computed inside each 32 px tile (edges repeat). If the
  neighbourhood features do not raise the score, the classes are as separable pixel by pixel
  as with context, and a U-Net cannot show what context adds.
* **FCN on shuffled tiles** (``--model RUN``, a monotemporal run of the config's models
  folder): the test split scored as it is, and with every test tile's pixels shuffled within
  the tile (the same permutation for bands and labels, so each pixel keeps its label but
  loses its neighbours). A model that classifies pixel by pixel keeps its score; one that
  uses context loses. (Shuffled tiles are also unlike any training tile, so the drop bounds
  the model's use of context from above.)

Usage::

    python benchmarks/context.py [--config configs/demo.toml] [--model baseline_cnn_01]

The last line is ``RESULT`` with every score.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from helpers.core.config import Config, load_config
from helpers.predict.scoring import score
from helpers.train.class_weights import class_weights
from helpers.train.tile_cache import load_tiles

FEATURE_SETS = ("pixel", "pixel+mean3", "pixel+mean3+std5")


def tile_features(x: np.ndarray, kind: str) -> np.ndarray:
    """Per-pixel features of tiles ``(n, H, W, bands)``: ``(n * H * W, features)`` float32.

    Neighbourhood statistics stay inside each tile (``mode="nearest"`` at its edges), so a
    feature never sees a pixel of another subset.
    """
    x = np.asarray(x, dtype=np.float32)
    parts = [x]
    if kind in ("pixel+mean3", "pixel+mean3+std5"):
        parts.append(ndimage.uniform_filter(x, size=(1, 3, 3, 1), mode="nearest"))
    if kind == "pixel+mean3+std5":
        mean = ndimage.uniform_filter(x, size=(1, 5, 5, 1), mode="nearest")
        square = ndimage.uniform_filter(x * x, size=(1, 5, 5, 1), mode="nearest")
        parts.append(np.sqrt(np.clip(square - mean * mean, 0.0, None)))
    return np.concatenate(parts, axis=-1).reshape(-1, sum(p.shape[-1] for p in parts))


def _scored(config: Config, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    result = score(y_true, y_pred, config.class_ids, [c.name for c in config.classes], config.unclassifiable_id)
    return float(result["overall_accuracy"]), float(result["kappa"])


def forest_scores(config: Config, max_pixels: int, trees: int, seed: int) -> dict[str, tuple[float, float]]:
    """OA and kappa of the monotemporal forest on each feature set."""
    from sklearn.ensemble import RandomForestClassifier

    weights = class_weights(config)
    keep = np.zeros(256, dtype=bool)
    keep[1: len(weights) + 1] = weights > 0
    train = [load_tiles(config, d, "train") for d in config.fcn_training]
    test = [load_tiles(config, d, "test") for d in sorted(config.evaluation)]
    y_train = np.concatenate([np.asarray(t.y).reshape(-1) for t in train])
    y_test = np.concatenate([np.asarray(t.y).reshape(-1) for t in test])
    candidates = np.flatnonzero(keep[y_train])
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(candidates, size=min(max_pixels, candidates.size), replace=False))
    out: dict[str, tuple[float, float]] = {}
    for kind in FEATURE_SETS:
        started = time.perf_counter()
        x_train = np.concatenate([tile_features(t.x, kind) for t in train])[picked]
        labels = y_train[picked]
        forest = RandomForestClassifier(n_estimators=trees, min_samples_leaf=2, n_jobs=2, random_state=seed,
                                        class_weight={int(c): float(weights[int(c) - 1]) for c in np.unique(labels)})
        forest.fit(x_train, labels)
        y_pred = np.concatenate([forest.predict(tile_features(t.x, kind)) for t in test]).astype(np.uint8)
        out[kind] = _scored(config, y_test, y_pred)
        print(f"forest {kind:18s} OA {out[kind][0]:.3f} kappa {out[kind][1]:.3f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    return out


def shuffled(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tiles whose pixels are permuted within each tile (bands and label together)."""
    n, h, w, bands = x.shape
    order = rng.permuted(np.tile(np.arange(h * w), (n, 1)), axis=1)
    xs = np.take_along_axis(np.asarray(x).reshape(n, h * w, bands), order[..., None], axis=1)
    ys = np.take_along_axis(np.asarray(y).reshape(n, h * w), order, axis=1)
    return xs.reshape(x.shape), ys.reshape(y.shape)


def fcn_scores(config: Config, model_name: str, seed: int) -> dict[str, tuple[float, float]]:
    """OA and kappa of a monotemporal run on the test tiles as they are and pixel-shuffled."""
    from helpers.predict.evaluation import predict_probabilities, split_parts, to_class_ids
    from helpers.train.run_record import load_run

    record = load_run(model_name, config)
    level = record.check_fits(config)
    model = record.load_model()
    parts = split_parts(config, "test", level, sequence=False)
    rng = np.random.default_rng(seed)
    out = {}
    for name, used in (("tiles", parts), ("shuffled", [shuffled(x, y, rng) for x, y in parts])):
        truth, probabilities = predict_probabilities(model, used, record.normaliser)
        out[name] = _scored(config, truth, to_class_ids(probabilities))
        print(f"{model_name} on {name:8s} OA {out[name][0]:.3f} kappa {out[name][1]:.3f}", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.toml", help="study-area TOML (default: the demo)")
    parser.add_argument("--model", default=None, help="also score this monotemporal run on shuffled test tiles")
    parser.add_argument("--max-pixels", type=int, default=60_000, help="forest training pixels (default 60,000)")
    parser.add_argument("--trees", type=int, default=50, help="trees per forest (default 50, the demo's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-forest", action="store_true", help="skip the forests")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    result: dict[str, tuple[float, float]] = {}
    if not args.no_forest:
        result.update({f"forest[{k}]": v for k, v in forest_scores(config, args.max_pixels, args.trees,
                                                                   args.seed).items()})
    if args.model:
        result.update({f"{args.model}[{k}]": v for k, v in fcn_scores(config, args.model, args.seed).items()})
    print("RESULT " + " ".join(f"{k}=OA:{oa:.3f},kappa:{kappa:.3f}" for k, (oa, kappa) in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
