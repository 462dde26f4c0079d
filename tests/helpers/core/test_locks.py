"""The study-area lock (helpers.core.locks) and stale partials: concurrent runs never mix (issue 10.1, 10.4).

The script tests start two real pre-processing runs on one generated study area. The first is
paused (SIGSTOP) while it holds the lock, so that the second always meets it, however fast the
machine; then it is resumed and must finish with complete outputs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from study_area import StudyArea

from helpers.core import locks
from helpers.core.errors import InputError
from helpers.core.io import atomic_path, remove_stale_partials
from helpers.core.paths import REPO_ROOT

SCRIPTS = REPO_ROOT / "src" / "data_processing"
DATE = "20160403"
REFUSAL = re.compile(r"error: (?P<path>\S+): another run holds this study area \(pid (?P<pid>\d+), (?P<script>\S+), "
                     r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\); wait for it to finish")


def script_command(script: str, *args: str, config: Path) -> list[str]:
    return [sys.executable, str(SCRIPTS / script), *args, "--config", str(config)]


def run_script(script: str, *args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(script_command(script, *args, config=config), capture_output=True, text=True,
                          timeout=300, check=False)


def wait_for_holder(lock: Path, process: subprocess.Popen[str], timeout: float = 120.0) -> dict[str, object]:
    """Poll until ``process`` has written itself into the lock file; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = json.loads(lock.read_text(encoding="utf-8"))
            if info.get("pid") == process.pid:
                return info
        except (OSError, ValueError):
            pass
        assert process.poll() is None, f"the first run ended before it was seen holding the lock: {process.stderr}"
        time.sleep(0.002)
    raise AssertionError("the first run never took the lock")


def dead_pid() -> int:
    """The pid of a process that has exited (reuse within a test is practically impossible)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


def no_partials(folder: Path) -> None:
    left = [p for p in folder.rglob("*") if "partial" in p.name]
    assert left == [], left


def complete_tiles(area: StudyArea) -> int:
    """Check that the tiles of DATE agree with their summary; return their number."""
    config = area.config()
    summary = json.loads(config.tiles_summary_path(DATE, "L1C").read_text())
    on_disk = {s: len(list(config.tiles_dir(DATE, "L1C", s).glob("*.tif"))) for s in ("train", "valid", "test")}
    assert on_disk == summary["written"] and sum(on_disk.values()) == summary["total_written"] > 0
    return summary["total_written"]


# ---------------------------------------------------------------------- the lock itself
def test_lock_records_its_holder_and_vanishes_on_release(tmp_path: Path) -> None:
    processed = tmp_path / "data" / "processed"
    with locks.study_area_lock(processed, "05_split_into_tiles.py") as lock:
        info = json.loads(lock.read_text())
        assert lock == processed / ".lock"
        assert (info["pid"], info["script"]) == (os.getpid(), "05_split_into_tiles.py")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", info["started"])
        with locks.study_area_lock(processed):  # re-entrant within one process
            pass
        assert lock.exists()
    assert not lock.exists()
    assert not processed.exists() and not processed.parent.exists(), "folders made only for the lock are removed"


def test_second_process_refuses_and_a_killed_holder_does_not_block(tmp_path: Path) -> None:
    processed = tmp_path / "processed"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from helpers.core import locks; "
        "locks.acquire(__import__('pathlib').Path(sys.argv[2]), 'holder.py'); print('held', flush=True); "
        "time.sleep(120)"), str(REPO_ROOT / "src"), str(processed)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(InputError) as refused:
            locks.acquire(processed, "me.py")
        match = REFUSAL.fullmatch(f"error: {refused.value}")
        assert match and int(match["pid"]) == holder.pid and match["script"] == "holder.py"
        holder.kill()  # SIGKILL: no cleanup; the file stays, the kernel drops the flock
        holder.wait(timeout=60)
    finally:
        holder.kill()
    assert json.loads((processed / ".lock").read_text())["pid"] == holder.pid
    with locks.study_area_lock(processed, "me.py") as lock:
        assert json.loads(lock.read_text())["script"] == "me.py"
    assert not (processed / ".lock").exists()


# ---------------------------------------------------------------------- stale partials
def test_stale_partials_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = dead_pid()
    folder = tmp_path / "processed" / "training_data" / "20160403_data"
    folder.mkdir(parents=True)
    stale_file = folder / f".20160403_L1C_merged.tif.{dead}-0a1b2c3d.partial"
    stale_sidecar = folder / f".20160403_L1C_merged.tif.{dead}-0a1b2c3d.partial.aux.xml"
    stale_old_form = tmp_path / "processed" / f".all_tile_endings.txt.{dead}.partial"
    stale_folder = folder / f".20160403_L1C_train_tiles_(8x8).{dead}-99aa.partial"
    live = folder / f".20160403_L1C_merged.tif.{os.getpid()}-0a1b2c3d.partial"
    too_deep = folder / "a" / "b" / f".x.tif.{dead}-0a1b2c3d.partial"
    for path in (stale_file, stale_sidecar, stale_old_form, live, too_deep):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    (stale_folder / "tile.tif").parent.mkdir()
    (stale_folder / "tile.tif").write_text("half")
    removed = remove_stale_partials(tmp_path / "processed", depth=2)
    assert sorted(removed) == sorted([stale_file, stale_sidecar, stale_old_form, stale_folder])
    assert live.exists() and too_deep.exists()


def test_atomic_names_are_unique_per_call(tmp_path: Path) -> None:
    final = tmp_path / "out.txt"
    with atomic_path(final) as first, atomic_path(final) as second:
        assert first != second
        assert first.name.startswith(f".out.txt.{os.getpid()}-") and first.name.endswith(".partial")
        first.write_text("1")
        second.write_text("2")
    assert final.read_text() == "1"  # the outer writer renames last


# ---------------------------------------------------------------------- real scripts
def test_concurrent_runs_second_refuses_first_completes(study_area: StudyArea) -> None:
    lock = study_area.processed / ".lock"
    first = subprocess.Popen(script_command("07_full_pipeline.py", DATE, config=study_area.config_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = wait_for_holder(lock, first)
        assert info["script"] == "07_full_pipeline.py"
        first.send_signal(signal.SIGSTOP)
        try:
            second = run_script("05_split_into_tiles.py", DATE, "--force", config=study_area.config_path)
        finally:
            first.send_signal(signal.SIGCONT)
        _, stderr = first.communicate(timeout=300)
    finally:
        first.kill()
    assert second.returncode == 2 and "Traceback" not in second.stderr
    lines = second.stderr.strip().splitlines()
    match = REFUSAL.fullmatch(lines[0]) if len(lines) == 1 else None
    assert match, second.stderr
    assert (Path(match["path"]), int(match["pid"]), match["script"]) == (lock, first.pid, "07_full_pipeline.py")
    assert second.stdout == ""
    assert first.returncode == 0, stderr
    complete_tiles(study_area)
    no_partials(study_area.processed)
    assert not lock.exists()


def test_wait_flag_runs_after_the_holder(study_area: StudyArea) -> None:
    lock = study_area.processed / ".lock"
    first = subprocess.Popen(script_command("07_full_pipeline.py", DATE, config=study_area.config_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        wait_for_holder(lock, first)
        first.send_signal(signal.SIGSTOP)
        try:
            second = subprocess.Popen(script_command("05_split_into_tiles.py", DATE, "--force", "--wait",
                                                     config=study_area.config_path),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            notice = second.stderr.readline()
        finally:
            first.send_signal(signal.SIGCONT)
        assert notice.startswith(f"waiting for the run holding {lock} (pid {first.pid}, 07_full_pipeline.py")
        first_out = first.communicate(timeout=300)
        second_out = second.communicate(timeout=300)
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert first.returncode == 0, first_out[1]
    assert second.returncode == 0, second_out[1]
    assert "wrote" in second_out[0]  # --force: it really re-tiled, after the first had finished
    complete_tiles(study_area)
    no_partials(study_area.processed)


def test_script_removes_stale_partials_and_survives_a_stale_lock(study_area: StudyArea) -> None:
    dead = dead_pid()
    sentinel = study_area.processed / "sentinel"
    sentinel.mkdir(parents=True)
    stale = sentinel / f".{DATE}_L1C_all_bands.tif.{dead}-0a1b2c3d.partial"
    stale.write_bytes(b"half a stack")
    lock = study_area.processed / ".lock"
    lock.write_text(json.dumps({"pid": dead, "host": "h", "script": "01_clip_sentinel.py",
                                "started": "2026-11-30 19:40:02"}))  # left by a killed run: no flock on it
    result = run_script("01_clip_sentinel.py", DATE, config=study_area.config_path)
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and not lock.exists()
    assert (sentinel / f"{DATE}_L1C_all_bands.tif").is_file()


def test_unwritable_output_folder_of_a_real_step(study_area: StudyArea) -> None:
    """Issue 10.2 with step 01: the scene folder cannot be created (a file is in the way; works as root)."""
    study_area.processed.mkdir()
    (study_area.processed / "sentinel").write_text("in the way")
    result = run_script("01_clip_sentinel.py", DATE, config=study_area.config_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: {study_area.processed / 'sentinel'}: cannot write "
                                     "(File exists: a file is where a folder is needed)")
    assert sorted(p.name for p in study_area.processed.iterdir()) == ["sentinel"]
