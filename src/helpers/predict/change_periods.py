"""The two change periods of a study area (config ``[change]``) and the names of their class maps.

Change detection without ground truth compares the class maps of two periods, A (e.g. the
2016 dates) and B (e.g. the 2018 dates), each a list of date combinations classified with one
model. The config reader checks only their form, so that a config without ``[change]`` stays
valid; here they are checked where they are used (``classify.py --period``,
``change_detection.py --periods``): both non-empty, every date a configured one (its NEW stack
is made by step 08b), and period A ending before period B begins (a date in both, or
interleaved dates, would compare a period with itself).

A period combination with the same dates as one of ``dates.combinations`` shares that
combination's maps (``{model}_combination_{k}_*``, made by ``classify.py --combination``); the
others are written as ``{model}_period_{a|b}_{k}_*``, so that no map of the ground-truth mode is
overwritten and no combination is classified twice.
"""

from __future__ import annotations

from helpers.core.config import Config
from helpers.core.errors import InputError

PERIODS: tuple[str, ...] = ("a", "b")
"""Period names as given on the command line (``--period a``) and in the config (``change.period_a``)."""


def period_name(period: str) -> str:
    """The canonical name (``"a"`` or ``"b"``) of a period given in any case.

    Raises:
        InputError: Neither ``a`` nor ``b``.
    """
    name = str(period).strip().lower()
    if name not in PERIODS:
        raise InputError(f"period '{period}' is neither 'a' nor 'b'")
    return name


def check_periods(config: Config) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]:
    """Both periods' date combinations, checked for use.

    Returns:
        (period A, period B): each a tuple of sorted date tuples.

    Raises:
        InputError: A period without combinations, a date that is neither in ``dates.new`` nor in
            ``dates.training_pool``, or periods that overlap (period B must begin after period A
            ends); the message names the config key.
    """
    known = {*config.new, *config.training_pool}
    periods = {"a": config.period_a, "b": config.period_b}
    for period, combos in periods.items():
        key = f"{config.source}: config key 'change.period_{period}'"
        if not combos:
            hint = (" (e.g. period_a = [the dates of dates.evaluation])" if period == "a"
                    else " (it defaults to dates.combinations, which is empty)")
            raise InputError(f"{key}: no date combinations{hint}")
        unknown = sorted({d for combo in combos for d in combo} - known)
        if unknown:
            raise InputError(f"{key}: dates {', '.join(unknown)} are not in dates.new or dates.training_pool")
    first_a, last_a = _span(config.period_a)
    first_b, last_b = _span(config.period_b)
    if last_a >= first_b:
        raise InputError(f"{config.source}: config key 'change.period_b': the periods overlap (period A "
                         f"{first_a}-{last_a}, period B {first_b}-{last_b}); period B must begin after period A ends")
    return config.period_a, config.period_b


def _span(combos: tuple[tuple[str, ...], ...]) -> tuple[str, str]:
    dates = sorted({d for combo in combos for d in combo})
    return dates[0], dates[-1]


def period_combinations(config: Config, period: str) -> tuple[tuple[str, ...], ...]:
    """The checked date combinations of period ``a`` or ``b`` (see :func:`check_periods`)."""
    return check_periods(config)[PERIODS.index(period_name(period))]


def map_stems(config: Config, period: str | None = None) -> list[str]:
    """Per combination of a period (or of ``dates.combinations`` for None), the name part of its maps.

    Returns:
        ``combination_{k}`` for a combination of ``dates.combinations`` (shared with the
        ground-truth mode), ``period_{a|b}_{k}`` for the others (``k`` its place in the period).
    """
    if period is None:
        return [f"combination_{k}" for k in range(len(config.combinations))]
    name = period_name(period)
    return [f"combination_{config.combinations.index(combo)}" if combo in config.combinations
            else f"period_{name}_{k}" for k, combo in enumerate(period_combinations(config, name))]
