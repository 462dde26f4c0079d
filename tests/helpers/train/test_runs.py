"""Run names, run lists and ensemble names."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.core.errors import InputError
from helpers.train.runs import ensemble_label, ensemble_members, ensemble_name, parse_runs


def test_run_lists_in_both_forms() -> None:
    assert parse_runs("134") == [1, 3, 4]
    assert parse_runs("1,3,12") == [1, 3, 12]
    assert ensemble_label([1, 3, 4]) == "134" and ensemble_label([1, 3, 12]) == "01_03_12"
    assert ensemble_name("lstm_random_seq", [1, 3, 4]) == "lstm_random_seq_ensemble_134"
    with pytest.raises(InputError, match="give run digits"):
        parse_runs("1a")
    with pytest.raises(InputError, match="positive and distinct"):
        parse_runs("110")


def test_ensemble_names_resolve_to_existing_runs(tmp_path: Path) -> None:
    for n in (1, 3, 4, 12):
        (tmp_path / f"lstm_fixed_seq_{n:02d}.keras").write_bytes(b"")
    assert ensemble_members(tmp_path, "lstm_fixed_seq_ensemble_134") == [
        "lstm_fixed_seq_01", "lstm_fixed_seq_03", "lstm_fixed_seq_04"]
    assert ensemble_members(tmp_path, "lstm_fixed_seq_ensemble_03_12") == ["lstm_fixed_seq_03", "lstm_fixed_seq_12"]
    assert ensemble_members(tmp_path, "lstm_fixed_seq_01") is None  # not an ensemble name
    (tmp_path / "lstm_fixed_seq_ensemble_13.keras").write_bytes(b"")
    assert ensemble_members(tmp_path, "lstm_fixed_seq_ensemble_13") is None  # a saved model of that name wins
    with pytest.raises(InputError, match="unknown model 'lstm_fixed_seq_02'"):
        ensemble_members(tmp_path, "lstm_fixed_seq_ensemble_12")
    with pytest.raises(InputError, match="not a plain name"):
        ensemble_members(tmp_path, "../x_ensemble_12")
