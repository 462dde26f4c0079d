"""Metrics (predict.scoring) against hand computations, the written reports (predict.reports), ensembles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.predict.evaluation import mean_softmax_predictions, to_class_ids
from helpers.predict.reports import report_paths, write_report
from helpers.predict.scoring import score

IDS = (1, 2, 3, 8)
NAMES = ("A", "B", "C", "Unclassifiable")
KEYS = {"overall_accuracy", "kappa", "f1_weighted", "precision_weighted", "recall_weighted", "jaccard_weighted",
        "per_class", "confusion_matrix", "confusion_matrix_normalised", "labels", "n_pixels"}


def small_case() -> tuple[np.ndarray, np.ndarray]:
    """Ten scored pixels plus unclassifiable (8) and outside (0) ground truth.

    Scored pairs (truth -> prediction): A: 3 right, 1 as B; B: 2 right, 1 as C;
    C: 2 right, 1 as A. Confusion matrix [[3, 1, 0], [0, 2, 1], [1, 0, 2]].
    """
    truth = np.array([[1, 1, 1, 1, 2, 2, 2], [3, 3, 3, 8, 8, 0, 0]])
    pred = np.array([[1, 1, 1, 2, 2, 2, 3], [3, 3, 1, 1, 2, 3, 1]])
    return truth, pred


def test_metrics_equal_a_hand_computation() -> None:
    truth, pred = small_case()
    m = score(truth, pred, IDS, NAMES, unclassifiable_id=8)
    assert set(m) == KEYS
    assert m["labels"] == [1, 2, 3]
    assert m["n_pixels"] == 10
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    np.testing.assert_allclose(m["confusion_matrix_normalised"],
                               [[3 / 4, 1 / 4, 0], [0, 2 / 3, 1 / 3], [1 / 3, 0, 2 / 3]])
    assert m["overall_accuracy"] == pytest.approx(7 / 10)
    # kappa: p_o = 0.7, p_e = sum(row_k * col_k) / n^2 = (4*4 + 3*3 + 3*3) / 100 = 0.34
    assert m["kappa"] == pytest.approx((0.7 - 0.34) / (1 - 0.34))
    # per class: A precision 3/4 recall 3/4; B 2/3, 2/3; C 2/3, 2/3
    a, b, c = (m["per_class"][n] for n in "ABC")
    assert (a["precision"], a["recall"], a["f1"]) == pytest.approx((0.75, 0.75, 0.75))
    assert (b["precision"], b["recall"], b["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert a["jaccard"] == pytest.approx(3 / 5)  # tp / (tp + fp + fn) = 3 / (3 + 1 + 1)
    assert c["jaccard"] == pytest.approx(2 / 4)
    assert (a["support"], b["support"], c["support"]) == (4, 3, 3)
    assert m["f1_weighted"] == pytest.approx(0.4 * 0.75 + 0.6 * 2 / 3)
    assert m["jaccard_weighted"] == pytest.approx(0.4 * 0.6 + 0.6 * 0.5)
    assert "Unclassifiable" not in m["per_class"]


def test_unclassifiable_and_outside_pixels_change_nothing() -> None:
    truth, pred = small_case()
    reference = score(truth, pred, IDS, NAMES, 8)
    for fill in (1, 2, 3, 8):
        other = pred.copy()
        other[(truth == 8) | (truth == 0)] = fill
        assert score(truth, other, IDS, NAMES, 8) == reference


def test_predictions_of_an_unscored_class_count_as_errors() -> None:
    truth = np.array([1, 1, 2, 2])
    pred = np.array([1, 8, 2, 2])
    m = score(truth, pred, IDS, NAMES, 8)
    assert m["overall_accuracy"] == pytest.approx(3 / 4)
    assert m["per_class"]["A"]["recall"] == pytest.approx(1 / 2)
    assert m["per_class"]["A"]["precision"] == pytest.approx(1.0)
    assert m["confusion_matrix"][0] == [1, 0, 0]
    assert m["confusion_matrix_normalised"][0][0] == pytest.approx(1 / 2)


def test_absent_class_scores_zero_without_warnings() -> None:
    truth = np.array([1, 1, 2])
    pred = np.array([1, 1, 2])
    m = score(truth, pred, IDS, NAMES, 8)
    assert m["overall_accuracy"] == 1.0 and m["kappa"] == pytest.approx(1.0)
    assert m["per_class"]["C"] == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "jaccard": 0.0, "support": 0}
    assert m["confusion_matrix_normalised"][2] == [0.0, 0.0, 0.0]


def test_score_agrees_with_scikit_learn_on_random_maps() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(4)
    truth = rng.integers(0, 9, size=(20, 16, 16))
    pred = np.where(rng.random(truth.shape) < 0.6, truth, rng.integers(1, 8, size=truth.shape))
    pred[pred == 0] = 1
    m = score(truth, pred, (1, 2, 3, 4, 5, 6, 7, 8), list("ABCDEFGH"), 8)
    keep = (truth != 8) & (truth != 0)
    t, p = truth[keep], pred[keep]
    labels = [1, 2, 3, 4, 5, 6, 7]
    assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(t, p))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(t, p, labels=labels, average="weighted", zero_division=0))
    assert m["jaccard_weighted"] == pytest.approx(skm.jaccard_score(t, p, labels=labels, average="weighted",
                                                                    zero_division=0))
    np.testing.assert_array_equal(m["confusion_matrix"], skm.confusion_matrix(t, p, labels=labels))


def test_report_files_and_json(tmp_path: Path) -> None:
    truth, pred = small_case()
    metrics = {"model": "m_01", "split": "test", **score(truth, pred, IDS, NAMES, 8)}
    written = write_report(metrics, tmp_path / "out", "m_01", ["A", "B", "C"])
    names = sorted(p.name for p in written)
    assert names == sorted(["m_01_log.txt", "m_01_confusion_matrix.png", "m_01_confusion_matrix.pdf",
                            "m_01_confusion_matrix_normalised.png", "m_01_confusion_matrix_normalised.pdf",
                            "metrics.json"])
    for path in written:
        assert path.is_file() and path.stat().st_size > 0, path
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names, "no partial files left"
    assert (tmp_path / "out" / "m_01_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "out" / "m_01_confusion_matrix.pdf").read_bytes()[:4] == b"%PDF"
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(saved) == KEYS | {"model", "split"}
    log = (tmp_path / "out" / "m_01_log.txt").read_text()
    for text in ("overall accuracy", "0.7000", "kappa", "Jaccard", "weighted average", "normalised", "0.750"):
        assert text in log, text


def test_the_validation_split_writes_beside_the_test_split(tmp_path: Path) -> None:
    truth, pred = small_case()
    test = {"model": "m_01", "split": "test", **score(truth, pred, IDS, NAMES, 8)}
    valid = {**score(truth, truth, IDS, NAMES, 8), "model": "m_01", "split": "valid"}
    written_test = write_report(test, tmp_path, "m_01", ["A", "B", "C"])
    before = {p: p.read_bytes() for p in written_test}
    written_valid = write_report(valid, tmp_path, "m_01", ["A", "B", "C"], split="valid")
    assert sorted(p.name for p in written_valid) == sorted(
        ["m_01_valid_log.txt", "m_01_valid_confusion_matrix.png", "m_01_valid_confusion_matrix.pdf",
         "m_01_valid_confusion_matrix_normalised.png", "m_01_valid_confusion_matrix_normalised.pdf",
         "metrics_valid.json"])
    assert {p: p.read_bytes() for p in written_test} == before
    assert json.loads((tmp_path / "metrics_valid.json").read_text())["overall_accuracy"] == 1.0
    assert report_paths(tmp_path, "m_01") == report_paths(tmp_path, "m_01", "test")
    with pytest.raises(ValueError, match="split must be one of"):
        report_paths(tmp_path, "m_01", "tset")


def test_mean_softmax_loads_one_model_at_a_time() -> None:
    outputs = [np.array([[0.6, 0.4]]), np.array([[0.2, 0.8]]), np.array([[0.5, 0.5]])]
    alive: list[int] = []
    peak = []

    class Stub:
        def __init__(self, k: int) -> None:
            self.k = k
            alive.append(k)
            peak.append(len(alive))

        def __del__(self) -> None:
            alive.remove(self.k)

    ids, mean = mean_softmax_predictions((lambda k=k: Stub(k) for k in range(3)), lambda m: outputs[m.k])
    np.testing.assert_allclose(mean, [[1.3 / 3, 1.7 / 3]], rtol=1e-6)
    assert ids.tolist() == [2]
    assert max(peak) == 1, "a model was loaded before the previous one was freed"
    assert to_class_ids(np.array([[0.1, 0.7, 0.2]])).tolist() == [2]


def test_sequence_models_by_input_rank_or_by_name() -> None:
    from types import SimpleNamespace

    from helpers.predict.evaluation import uses_sequences

    rank = lambda n: SimpleNamespace(inputs=[SimpleNamespace(shape=(None,) * n)])  # noqa: E731
    assert uses_sequences(rank(5), "baseline_cnn_01")
    assert not uses_sequences(rank(4), "my_model")
    assert uses_sequences(object(), "lstm_fixed_seq_01"), "the original's naming convention"
    assert not uses_sequences(object(), "baseline_cnn_01")
