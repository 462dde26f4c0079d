"""The fused batch call (models + post-processing in one compiled call) against the host path."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scene_stacks import N_BANDS, N_CLASSES, SHAPE, collect_blocks, collect_class_maps, make_stacks, write_cloud_mask

from helpers.predict import pass_batches, scene_reading
from helpers.predict.device_batches import can_fuse, fused_batches
from helpers.predict.sliding_windows import plan_axis, predict_scene, window_geometry
from helpers.predict.window_models import HostBatches, WindowModel

COMBINATIONS = [[0, 1, 2], [1, 2], [0, 2]]


@pytest.fixture(scope="module")
def keras_models() -> dict[str, list]:
    """Small random FCNs and FCN + ConvLSTMs (two of each, for ensembles), built once."""
    import keras

    from helpers.train.models import build_fcn_lstm, build_unet

    keras.utils.set_random_seed(11)
    fcns = [build_unet(N_BANDS, N_CLASSES, width=0.0625) for _ in range(2)]
    sequences = [build_fcn_lstm(build_unet(N_BANDS, N_CLASSES, width=0.0625, tile_size=32), 3, 32) for _ in range(2)]
    return {"fcn": fcns, "lstm": sequences}


def window_models(models: list, window: int, offset: float = 0.0, masking: str = "recurrent") -> list[WindowModel]:
    """The production window models of Keras models, each member with its own standardisation."""
    from helpers.predict.keras_windows import keras_window_model
    from helpers.train.normalisation import Normaliser

    return [keras_window_model(m, window, Normaliser.from_values([100.0 + offset * i] * N_BANDS,
                                                                 [60.0 + offset * i] * N_BANDS), masking)
            for i, m in enumerate(models)]


def both_paths(stacks: list[Path], models: list[WindowModel], window: int, margin: int,
               masks: list[Path] | None = None, min_clear: int = 1, fuse: bool | None = True) -> list[tuple]:
    """The whole pass with fused batches (``fuse``) and with host batches.

    Returns:
        Per path: (probabilities, classes, confidence, used, area).
    """
    results = []
    for fused in (fuse, False):
        blocks = list(predict_scene(models, stacks, COMBINATIONS, N_BANDS, N_CLASSES, window, margin, batch_size=3,
                                    cloud_masks=masks, min_clear_dates=min_clear, fused=fused))
        probabilities, area = collect_blocks(blocks)
        classes, confidence = collect_class_maps(blocks)
        used = None if masks is None else np.concatenate([b.dates_used for b in blocks], axis=1)
        results.append((probabilities, classes, confidence, used, area))
    return results


def assert_same_maps(fused: tuple, host: tuple) -> None:
    np.testing.assert_allclose(fused[0], host[0], atol=1e-6)
    np.testing.assert_array_equal(fused[1], host[1])
    np.testing.assert_allclose(fused[2], host[2], atol=1e-6)
    if host[3] is not None:
        np.testing.assert_array_equal(fused[3], host[3])
    area = host[4]
    assert (host[1][:, area] > 0).all() if host[3] is None else True  # every area pixel classified without masks


@pytest.mark.parametrize("kind", ["fcn", "lstm"])
@pytest.mark.parametrize("mode", ["faithful", "fast"])
@pytest.mark.parametrize("members", [1, 2])
def test_fused_pass_gives_the_host_paths_maps(tmp_path: Path, keras_models: dict, kind: str, mode: str,
                                              members: int) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=3)
    window, margin = window_geometry(mode, shape=SHAPE)
    models = window_models(keras_models[kind][:members], window, offset=5.0)
    assert can_fuse(models, masked=False)
    fused, host = both_paths(stacks, models, window, margin)
    assert_same_maps(fused, host)
    assert any(key[-1] == margin for key in pass_batches._FUSED)  # the windows' cores came back cropped
    assert np.ptp(host[0][:, :, host[4]], axis=-1).min() > 1e-3  # maps that vary: the comparison means something


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_fused_fcn_with_cloud_masks_gives_the_host_paths_maps(tmp_path: Path, keras_models: dict, mode: str) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=3)
    rng = np.random.default_rng(4)
    masks = [write_cloud_mask(tmp_path / f"mask_{d}.tif", rng.choice([0, 0, 0, 1, 2, 255], size=SHAPE))
             for d in range(3)]
    window, margin = window_geometry(mode, shape=SHAPE)
    models = window_models(keras_models["fcn"], window)
    for min_clear in (1, 2):
        fused, host = both_paths(stacks, models, window, margin, masks, min_clear)
        assert_same_maps(fused, host)
        assert (host[3][:, host[4]] == 0).any() and (host[1][host[3] == 0] == 0).all()


def blob_masks(folder: Path, dates: int) -> list[Path]:
    """Cloud masks with a cloud and its shadow on all but the first date (most windows stay clear)."""
    masks = []
    for date in range(dates):
        mask = np.zeros(SHAPE, dtype=np.uint8)
        if date:
            mask[20 * date: 20 * date + 14, 10 + 25 * date: 30 + 25 * date] = 1
            mask[20 * date + 14: 20 * date + 18, 10 + 25 * date: 30 + 25 * date] = 2
        masks.append(write_cloud_mask(folder / f"blobs_{date}.tif", mask))
    return masks


@pytest.mark.parametrize("mode", ["faithful", "fast"])
@pytest.mark.parametrize("members", [1, 2])
def test_fused_sequence_model_with_recurrent_masking_gives_the_host_paths_maps(tmp_path: Path, keras_models: dict,
                                                                              mode: str, members: int) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=3)
    masks = blob_masks(tmp_path, 3)
    window, margin = window_geometry(mode, shape=SHAPE)
    models = window_models(keras_models["lstm"][:members], window, offset=5.0)
    assert can_fuse(models, masked=True)
    for min_clear in (1, 3):
        fused, host = both_paths(stacks, models, window, margin, masks, min_clear)
        assert_same_maps(fused, host)
        assert (host[3][:, host[4]] < 3).any()  # some pixels used fewer dates: the masks mattered
        assert ((host[3] == 0) == (host[1] == 0)).all()  # not classified: class 0, and only there
    assert not any(isinstance(f, HostBatches) for f in pass_batches.pass_batches(
        models, COMBINATIONS, 3, N_BANDS, N_CLASSES, window, margin, masked=True).functions())


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_masked_sequence_model_takes_the_fused_call_for_clear_windows(tmp_path: Path, keras_models: dict,
                                                                     mode: str, monkeypatch: pytest.MonkeyPatch
                                                                     ) -> None:
    from helpers.predict import window_models as window_module

    stacks, _, _ = make_stacks(tmp_path, dates=3)
    masks = blob_masks(tmp_path, 3)
    window, margin = window_geometry(mode, shape=SHAPE)
    models = window_models(keras_models["lstm"], window, offset=5.0, masking="per_pattern")
    routed = pass_batches.pass_batches(models, COMBINATIONS, 3, N_BANDS, N_CLASSES, window, margin, masked=True)
    assert routed.routed and isinstance(routed.core_clear, window_module.AllDatesClear)
    clear_windows = []
    original = window_module.AllDatesClear.__call__
    monkeypatch.setattr(window_module.AllDatesClear, "__call__",
                        lambda self, raw, clear: clear_windows.append(len(raw)) or original(self, raw, clear))
    fused, host = both_paths(stacks, models, window, margin, masks, fuse=None)  # host: all windows with clear dates
    assert clear_windows  # some windows went through the call without masks
    assert_same_maps(fused, host)
    assert (host[3][:, host[4]] < 3).any()  # some pixels used fewer dates: the masks mattered


def test_clear_windows_are_not_routed_when_a_combination_has_too_few_dates(keras_models: dict) -> None:
    models = window_models(keras_models["lstm"][:1], 32, masking="per_pattern")
    assert not pass_batches.pass_batches(models, COMBINATIONS, 3, N_BANDS, N_CLASSES, 32, 8, True, 3).routed
    assert not pass_batches.pass_batches(models, COMBINATIONS, 3, N_BANDS, N_CLASSES, 32, 8, True, 1, False).routed
    assert not pass_batches.pass_batches(models, COMBINATIONS, 3, N_BANDS, N_CLASSES, 32, 8, False).routed


def test_only_keras_models_without_sequences_masked_per_pattern_are_fused(keras_models: dict) -> None:
    fcn, lstm = window_models(keras_models["fcn"][:1], 32) + window_models(keras_models["lstm"][:1], 32, 0.0,
                                                                           "per_pattern")
    recurrent = window_models(keras_models["lstm"][:1], 32)[0]
    plain = WindowModel.fcn(lambda batch: batch, fcn.normaliser)
    assert can_fuse([fcn, lstm], masked=False) and can_fuse([fcn], masked=True)
    assert can_fuse([fcn, recurrent], masked=True)
    assert not can_fuse([lstm], masked=True) and not can_fuse([fcn, plain], masked=False)
    with pytest.raises(ValueError, match="only Keras models"):
        fused_batches([lstm], COMBINATIONS, 3, 32, N_BANDS, masked=True)
    batches = fused_batches([fcn], COMBINATIONS, 3, 32, N_BANDS)
    with pytest.raises(ValueError, match="exactly when"):
        batches(np.zeros((1, 3, 32, 32, N_BANDS), np.uint16), np.ones((1, 3, 32, 32), bool))
    assert isinstance(pass_batches.batch_function([lstm], COMBINATIONS, 3, N_BANDS, N_CLASSES, 32, masked=True),
                      HostBatches)


def test_chunks_read_ahead_give_the_same_maps(tmp_path: Path, keras_models: dict,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=3)
    models = window_models(keras_models["fcn"][:1], 32)
    whole, _ = collect_blocks(predict_scene(models, stacks, COMBINATIONS, N_BANDS, N_CLASSES, 32, 8))
    monkeypatch.setattr(scene_reading, "CHUNK_ROWS", 40)  # several chunks, each read ahead by the thread
    chunked, _ = collect_blocks(predict_scene(models, stacks, COMBINATIONS, N_BANDS, N_CLASSES, 32, 8,
                                              block_rows=24))
    np.testing.assert_array_equal(chunked, whole)

    starts = plan_axis(SHAPE[0], 32, 8).starts.tolist()
    with contextlib.ExitStack() as opened:
        datasets = [opened.enter_context(rasterio.open(path)) for path in stacks]
        reader = scene_reading.ChunkReader(datasets, 32, starts)
        opened.callback(reader.close)
        assert len(reader.plan) >= 3 and len(reader.buffers) == 2
        for y in starts:
            np.testing.assert_array_equal(reader.rows_at(y, 32)[:, :N_BANDS], bands[:, :, y: y + 32])
            np.testing.assert_array_equal(reader.rows_at(y, 32)[0, N_BANDS], area[y: y + 32])
        with pytest.raises(ValueError, match="not planned"):
            reader.rows_at(0, 32)


def test_fused_pass_in_mixed_precision_gives_the_host_paths_maps(tmp_path: Path, keras_models: dict) -> None:
    from helpers.train import models as model_builders

    for name in ("fcn", "lstm"):
        keras_models[name][0].save(tmp_path / f"{name}.keras")
    stacks, _, _ = make_stacks(tmp_path, dates=3)
    window, margin = window_geometry("faithful", shape=SHAPE)
    model_builders.set_precision("mixed_bfloat16")
    try:
        for name in ("fcn", "lstm"):
            loaded = model_builders.load_model(tmp_path / f"{name}.keras")  # rebuilt in bfloat16
            for masks in (None, blob_masks(tmp_path, 3)):  # with masks: the masked mean, the masked ConvLSTM
                fused, host = both_paths(stacks, window_models([loaded], window), window, margin, masks)
                np.testing.assert_allclose(fused[0], host[0], atol=1e-6, err_msg=name)
                np.testing.assert_array_equal(fused[1], host[1], err_msg=name)
                assert fused[0].dtype == np.float32
    finally:
        model_builders.set_precision("float32")
