"""The change periods of a config: their form at load, their checks where used, the names of their maps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.core.config import load_config
from helpers.core.errors import ConfigError, InputError
from helpers.predict.change_periods import check_periods, map_stems, period_combinations, period_name

# write_config: the demo config on a generated area; pool 20160403, 20160522; new 20220419 (one combination)


def test_defaults_keep_a_config_without_change_valid(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config())
    assert config.period_a == () and config.period_b == config.combinations == (("20220419",),)
    assert config.classification_dates == config.new  # step 08b does what it did
    with pytest.raises(InputError, match=r"config key 'change.period_a': no date combinations"):
        check_periods(config)


def test_periods_as_read_and_the_dates_08b_processes(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config({"change.period_a": [["2016-05-22", "20160403"], ["20160403"]]}))
    assert config.period_a == (("20160403", "20160522"), ("20160403",))  # sorted, normalised
    assert config.classification_dates == ("20220419", "20160403", "20160522")
    assert period_combinations(config, "A") == config.period_a
    assert period_combinations(config, "b") == (("20220419",),)


def test_map_names_share_the_combinations_maps(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config({"dates.new": ["20220419", "20220501"],
                                       "dates.combinations": [["20220419"], ["20220501"]],
                                       "change.period_a": [["20160403"], ["20160522"]],
                                       "change.period_b": [["20220501"], ["20220419", "20220501"]]}))
    assert map_stems(config, "a") == ["period_a_0", "period_a_1"]
    assert map_stems(config, "b") == ["combination_1", "period_b_1"]
    assert map_stems(config) == ["combination_0", "combination_1"]


@pytest.mark.parametrize(("change", "key", "reason"), [
    ({"change.period_a": "20160403"}, "change.period_a", "expected list, got str"),
    ({"change.period_a": [[]]}, r"change.period_a\[0\]", "must be a non-empty list of dates"),
    ({"change.period_a": ["20160403"]}, r"change.period_a\[0\]", "must be a non-empty list of dates"),
    ({"change.period_a": [["20160403", "2016-04-03"]]}, r"change.period_a\[0\]", "listed twice"),
    ({"change.period_b": [["20220419"], ["20220419"]]}, r"change.period_b\[1\]", r"the same dates as "
                                                                               r"change.period_b\[0\]"),
    ({"change.period_a": [["20161331"]]}, r"change.period_a\[0\]", "not a valid date"),
    ({"change.period_c": []}, "change.period_c", r"unknown key \(did you mean .change.period_b.\?\)"),
])
def test_malformed_periods_are_refused_at_load(write_config: Callable[..., Path], change: dict, key: str,
                                               reason: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}.*{reason}"):
        load_config(write_config(change))


@pytest.mark.parametrize(("change", "match"), [
    ({"change.period_a": []}, "'change.period_a': no date combinations"),
    ({"change.period_a": [["20160403"]], "change.period_b": []}, "'change.period_b': no date combinations"),
    ({"change.period_a": [["20150101"]]}, "'change.period_a': dates 20150101 are not in dates.new or "
                                          "dates.training_pool"),
    ({"change.period_a": [["20160403", "20220419"]]}, r"'change.period_b': the periods overlap \(period A "
                                                      r"20160403-20220419, period B 20220419-20220419\)"),
    ({"change.period_a": [["20220419"]], "change.period_b": [["20160403"]]}, "period B must begin after"),
    ({"change.period_a": [["20160403"], ["20160522"]], "change.period_b": [["20160403", "20220419"]]},
     "the periods overlap"),
])
def test_unusable_periods_are_refused_where_used(write_config: Callable[..., Path], change: dict,
                                                 match: str) -> None:
    config = load_config(write_config(change))  # the form is fine: the config loads
    with pytest.raises(InputError, match=match):
        check_periods(config)


def test_period_names() -> None:
    assert period_name(" B ") == "b"
    with pytest.raises(InputError, match="period 'c' is neither 'a' nor 'b'"):
        period_name("c")
