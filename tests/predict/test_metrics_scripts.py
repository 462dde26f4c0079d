"""metrics.py and ensemble_avg.py on a tiny demo study area with tiny untrained models saved as runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runs_fixture import save_run
from study_area import DELETE, demo_settings, write_config_file, write_config_variant

from helpers.core.config import L1C_BANDS, Config, load_config
from helpers.core.errors import run_cli
from helpers.core.paths import REPO_ROOT
from helpers.data import pipeline
from helpers.demo.demo_data import generate_demo
from helpers.predict.evaluation import evaluate_ensemble, get_metrics_and_cm
from helpers.predict.scoring import score
from helpers.train.normalisation import Normaliser
from helpers.train.tile_cache import load_tiles
from predict import ensemble_avg, metrics

SCRIPTS = REPO_ROOT / "src" / "predict"
REPORT_FILES = {"metrics{s}.json", "{m}{s}_log.txt", "{m}{s}_confusion_matrix.png", "{m}{s}_confusion_matrix.pdf",
                "{m}{s}_confusion_matrix_normalised.png", "{m}{s}_confusion_matrix_normalised.pdf"}
MEAN, STD = [1500.0] * 13, [1000.0] * 13
MODELS: dict[str, object] = {}
"""The fixture's models in memory (the same weights as the saved files)."""

pytestmark = pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer:UserWarning")


def _quiet(message: str) -> None:
    del message


def write_config(folder: Path) -> Path:
    """configs/demo.toml with its data, models and reports under ``folder``."""
    return write_config_file(folder / "config.toml", demo_settings(folder))


def _save(model, config: Config, name: str, bands: tuple[str, ...] = L1C_BANDS) -> None:
    from helpers.train.training import compile_model

    compile_model(model, config, 1e-3)
    save_run(model, config, name, mean=MEAN[:len(bands)], std=STD[:len(bands)], bands=bands)
    MODELS[name] = model


def write_no_gt_config(config: Config) -> Path:
    """A classification-only variant of the area's config (no ground_truth.file), beside it."""
    return write_config_variant(config.source, "no_gt.toml",
                                {"ground_truth.file": DELETE, "ground_truth.attribute": DELETE})


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A 168x168 px demo area with test tiles, two tiny FCN runs, a tiny FCN+LSTM and a 12-band FCN."""
    import keras

    from helpers.train.models import build_fcn_lstm, build_unet

    folder = tmp_path_factory.mktemp("metrics_area")
    config = load_config(write_config(folder))
    generate_demo(config, seed=1, size=168)
    pipeline.process_batch(config, config.training_pool, "L1C", "TRAIN", say=_quiet)
    keras.utils.set_random_seed(1)
    fcn = build_unet(n_bands=13, n_classes=8, width=0.0625)
    _save(fcn, config, "baseline_cnn_01")
    _save(build_unet(n_bands=13, n_classes=8, width=0.0625), config, "baseline_cnn_02")
    _save(build_fcn_lstm(fcn, timesteps=len(config.evaluation), tile_size=32), config, "lstm_fixed_seq_01")
    _save(build_unet(n_bands=12, n_classes=8, width=0.0625), config, "baseline_cnn_09",
          bands=tuple(b for b in L1C_BANDS if b != "B10"))
    return config


_MANUAL: dict[tuple[Path, str], tuple[np.ndarray, np.ndarray]] = {}


def _manual_probabilities(config: Config, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of a saved FCN on every evaluation date's test tiles, the saved normalisation, pooled."""
    key = (config.models_root, name)
    if key not in _MANUAL:
        _MANUAL[key] = _predict_by_hand(MODELS[name], config)
    return _MANUAL[key]


def _predict_by_hand(model, config: Config) -> tuple[np.ndarray, np.ndarray]:
    normaliser = Normaliser.from_values(MEAN, STD)
    truth, probs = [], []
    for date in config.evaluation:
        tiles = load_tiles(config, date, "test")
        probs.append(model.predict(normaliser(np.asarray(tiles.x)), batch_size=32, verbose=0))
        truth.append(np.asarray(tiles.y))
    return np.concatenate(truth), np.concatenate(probs)


def _report_dir(config: Config, name: str) -> Path:
    return config.reports_root / "logs_and_plots" / name


def _split_files(name: str, split: str) -> set[str]:
    return {f.format(m=name, s="" if split == "test" else f"_{split}") for f in REPORT_FILES}


def _check_report(config: Config, name: str, split: str = "test") -> dict:
    found = {p.name for p in _report_dir(config, name).iterdir()}
    assert _split_files(name, split) <= found <= _split_files(name, "test") | _split_files(name, "valid"), found
    return json.loads((_report_dir(config, name) / ("metrics.json" if split == "test" else f"metrics_{split}.json"))
                      .read_text())


@pytest.mark.parametrize("cwd", ["root", "predict"])
def test_script_from_root_and_from_its_folder(area: Config, cwd: str) -> None:
    name = "baseline_cnn_01"
    script = ["src/predict/metrics.py"] if cwd == "root" else ["metrics.py"]
    result = subprocess.run([sys.executable, *script, name, "--config", str(area.source)], capture_output=True,
                            text=True, cwd=REPO_ROOT if cwd == "root" else SCRIPTS, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "overall accuracy" in result.stdout and "Farmland" in result.stdout
    saved = _check_report(area, name)
    assert saved["model"] == name and saved["split"] == "test"
    truth, probs = _manual_probabilities(area, name)
    expected = score(truth, np.argmax(probs, axis=-1) + 1, area.class_ids, [c.name for c in area.classes], 8)
    assert saved["confusion_matrix"] == expected["confusion_matrix"]
    assert saved["overall_accuracy"] == pytest.approx(expected["overall_accuracy"])


def test_in_memory_models_fcn_and_sequence(area: Config) -> None:
    result = get_metrics_and_cm("baseline_cnn_02", model=MODELS["baseline_cnn_02"], config=area, say=_quiet)
    assert result == _check_report(area, "baseline_cnn_02")
    sequences = get_metrics_and_cm("lstm_fixed_seq_01", split="valid", model=MODELS["lstm_fixed_seq_01"],
                                   config=area, say=_quiet)
    assert _check_report(area, "lstm_fixed_seq_01", "valid")["split"] == "valid"
    sets = [load_tiles(area, d, "valid") for d in area.evaluation]
    common = set.intersection(*(set(t.endings) for t in sets))
    first = sets[0]
    gt = np.asarray(first.y)[[i for i, e in enumerate(first.endings) if e in common]]
    assert sequences["n_pixels"] == int(((gt != 0) & (gt != 8)).sum()) > 0


def test_ensemble_is_the_mean_softmax(area: Config) -> None:
    result = evaluate_ensemble("baseline_cnn", [1, 2], config=area, say=_quiet)
    assert result == _check_report(area, "baseline_cnn_ensemble_12")
    truth, p1 = _manual_probabilities(area, "baseline_cnn_01")
    _, p2 = _manual_probabilities(area, "baseline_cnn_02")
    mean = (p1.astype(np.float64) + p2) / 2
    expected = score(truth, np.argmax(mean, axis=-1) + 1, area.class_ids, [c.name for c in area.classes], 8)
    assert result["confusion_matrix"] == expected["confusion_matrix"]


@pytest.mark.parametrize(("module", "argv", "message"), [
    (metrics, ["baseline_cnn_77"], "unknown model"),
    (metrics, ["../x"], "not a plain name"),
    (metrics, ["baseline_cnn_09"], "takes 12 bands"),
    (metrics, [], "give either MODEL_NAME"),
    (metrics, ["baseline_cnn_01", "--model", "baseline_cnn_01.keras"], "not both"),
    (metrics, ["--model", "/no/such/run.keras"], "model file not found"),
    (ensemble_avg, ["baseline_cnn", "--runs", "17"], "unknown model"),
    (ensemble_avg, ["../baseline_cnn", "--runs", "1"], "not a plain name"),
])
def test_bad_input_is_one_line_and_writes_nothing(area: Config, capsys: pytest.CaptureFixture, module, argv,
                                                  message: str) -> None:
    before = sorted(area.reports_root.rglob("*")) if area.reports_root.exists() else []
    with pytest.raises(SystemExit) as exit_info:
        run_cli(module.main, [*argv, "--config", str(area.source)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert "Traceback" not in "\n".join(err)
    after = sorted(area.reports_root.rglob("*")) if area.reports_root.exists() else []
    assert after == before


def test_bad_name_from_the_command_line(area: Config) -> None:
    result = subprocess.run([sys.executable, "metrics.py", "../x", "--config", str(area.source)], capture_output=True,
                            text=True, cwd=SCRIPTS, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_the_validation_split_is_written_beside_the_test_split(area: Config, capsys: pytest.CaptureFixture) -> None:
    name = "baseline_cnn_02"
    with pytest.raises(SystemExit) as done:
        run_cli(metrics.main, [name, "--config", str(area.source)])
    assert done.value.code == 0
    folder = _report_dir(area, name)
    test_files = {p: p.read_bytes() for p in folder.iterdir() if p.name in _split_files(name, "test")}
    assert {p.name for p in test_files} == _split_files(name, "test")
    with pytest.raises(SystemExit) as done:
        run_cli(metrics.main, [name, "--split", "valid", "--config", str(area.source)])
    assert done.value.code == 0
    assert {p.name for p in folder.iterdir()} == _split_files(name, "test") | _split_files(name, "valid")
    assert {p: p.read_bytes() for p in test_files} == test_files, "the test split's reports were rewritten"
    valid = json.loads((folder / "metrics_valid.json").read_text())
    assert valid["split"] == "valid" and json.loads(test_files[folder / "metrics.json"])["split"] == "test"
    assert "split: valid" in (folder / f"{name}_valid_log.txt").read_text()
    capsys.readouterr()


def test_a_model_file_from_elsewhere_is_scored_under_its_run_name(area: Config, tmp_path: Path) -> None:
    run_folder = tmp_path / "shared" / "portable_fcn_01"
    run_folder.mkdir(parents=True)
    shutil.copy(area.models_root / "baseline_cnn_01.keras", run_folder / "portable_fcn_01.keras")
    with pytest.raises(SystemExit) as done:
        run_cli(metrics.main, ["--model", str(run_folder), "--config", str(area.source)])
    assert done.value.code == 0
    saved = _check_report(area, "portable_fcn_01")
    assert saved["model"] == "portable_fcn_01"
    truth, probs = _manual_probabilities(area, "baseline_cnn_01")
    expected = score(truth, np.argmax(probs, axis=-1) + 1, area.class_ids, [c.name for c in area.classes], 8)
    assert saved["confusion_matrix"] == expected["confusion_matrix"]
    assert [p.name for p in run_folder.iterdir()] == ["portable_fcn_01.keras"], "nothing written beside the model"


@pytest.mark.parametrize(("module", "argv"), [(metrics, ["baseline_cnn_01"]),
                                              (ensemble_avg, ["baseline_cnn", "--runs", "12"])])
def test_a_study_area_without_ground_truth_is_refused(area: Config, capsys: pytest.CaptureFixture, module,
                                                      argv: list[str]) -> None:
    config = write_no_gt_config(area)
    before = sorted(area.reports_root.rglob("*")) if area.reports_root.exists() else []
    with pytest.raises(SystemExit) as done:
        run_cli(module.main, [*argv, "--config", str(config)])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{config} has no ground_truth.file" in err[0], err
    assert (sorted(area.reports_root.rglob("*")) if area.reports_root.exists() else []) == before
