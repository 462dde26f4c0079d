"""The command-line wrapper (helpers.core.errors.run_cli): faults and interrupts as one line, never a traceback.

Each fault is produced in a small script run in a fresh interpreter, as a user would meet it:
a damaged raster (issue 10.3), an output folder that cannot be written (10.2), SIGTERM or
Ctrl-C in the middle of an atomic write or during the imports (10.4).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from helpers.core import faults
from helpers.core.errors import InputError, hold_until_exit, run_cli
from helpers.core.io import atomic_path, write_raster

SRC = Path(__file__).resolve().parents[3] / "src"
PROFILE = {"crs": "EPSG:32633", "transform": Affine(10.0, 0.0, 400020.0, 0.0, -10.0, 5639940.0)}


def write_script(folder: Path, body: str) -> Path:
    """A script that imports the helpers from ``src/`` and runs ``main`` under run_cli."""
    path = folder / "script.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(SRC)!r})\n" + textwrap.dedent(body)
                    + "\nif __name__ == '__main__':\n    from helpers.core.errors import run_cli\n    run_cli(main)\n",
                    encoding="utf-8")
    return path


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120,
                          check=False)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Assert exit status 2 and a single ``error:`` line on stderr; return it."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def damage(path: Path) -> None:
    """Overwrite 20 KB in the middle of a file, as the audit did."""
    content = bytearray(path.read_bytes())
    middle = len(content) // 2
    content[middle:middle + 20_000] = np.random.default_rng(7).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(content))


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial" in p.name]


# ---------------------------------------------------------------------- damaged rasters
READ_SCRIPT = """
from helpers.core.io import open_raster

def main(argv):
    with open_raster(sys.argv[1]) as src:
        src.read()
    return 0
"""


@pytest.mark.parametrize(("use", "step"), [("training_data", "04_merge_tifs.py 20160403 L1C --force"),
                                           ("classification_data", "04_merge_tifs.py 20160403 L1C NEW --force")])
def test_damaged_raster_is_one_line_naming_file_and_step(tmp_path: Path, use: str, step: str) -> None:
    stack = tmp_path / "data" / "processed" / use / "20160403_data" / "20160403_L1C_merged.tif"
    stack.parent.mkdir(parents=True)
    write_raster(stack, np.random.default_rng(0).integers(0, 60000, (4, 600, 600), dtype=np.uint16), PROFILE)
    damage(stack)
    line = one_error_line(run(write_script(tmp_path, READ_SCRIPT), str(stack)))
    assert re.fullmatch(re.escape(f"error: {stack}: damaged or unreadable raster (") + r"band \d+: .*failed.*"
                        + re.escape(f"); rebuild it with {step}"), line), line


def test_damaged_raster_read_directly_with_rasterio(tmp_path: Path) -> None:
    """Without open_raster the file name comes from GDAL's message; the advice is generic."""
    stack = tmp_path / "stack.tif"
    write_raster(stack, np.random.default_rng(0).integers(0, 60000, (4, 600, 600), dtype=np.uint16), PROFILE)
    damage(stack)
    script = write_script(tmp_path, """
        import rasterio

        def main(argv):
            with rasterio.open(sys.argv[1]) as src:
                src.read()
        """)
    line = one_error_line(run(script, str(stack)))
    assert re.fullmatch(r"error: \S*stack\.tif: damaged or unreadable raster \(band \d+: .*\); rebuild it with --force",
                        line), line


@pytest.mark.parametrize(("path", "hint"), [
    ("d/processed/sentinel/20160403_L2A_all_bands.tif", "rebuild it with 01_clip_sentinel.py 20160403 L2A --force"),
    ("d/processed/ground_truth/gt_rasterized.tif", "rebuild it with 02_rasterize_shapefile.py --force"),
    ("d/processed/ground_truth/gt_water_masked_0.2.tif", "rebuild it with 02b_restrict_water_area.py --force"),
    ("d/processed/ground_truth/gt.tif", "rebuild it with 02b_restrict_water_area.py --force"),
    ("d/processed/ground_truth/area.tif", "rebuild it with 03_create_area_tif.py --force"),
    ("d/processed/training_data/20160403_data/20160403_L1C_test_tiles_(32x32)/20160403_L1C_tile_001_002.tif",
     "rebuild it with 05_split_into_tiles.py 20160403 L1C --force"),
    ("d/processed/classified/run_01/map.tif", "rebuild it by rerunning the step that wrote it with --force"),
    ("d/raw/sentinel/level_L1C/x.SAFE/B04.jp2", "it is a raw input: replace it with an intact copy"),
    ("elsewhere/file.tif", None),
])
def test_rebuild_hint(path: str, hint: str | None) -> None:
    assert faults.rebuild_hint(path) == hint


# ---------------------------------------------------------------------- unwritable outputs
WRITE_SCRIPT = """
import numpy as np
from affine import Affine
from helpers.core.io import write_raster

def main(argv):
    write_raster(sys.argv[1], np.zeros((3, 5, 5), dtype=np.uint16),
                 {"crs": "EPSG:32633", "transform": Affine(10.0, 0.0, 0.0, 0.0, -10.0, 0.0)})
    return 0
"""


def test_output_below_a_file_is_one_line(tmp_path: Path) -> None:
    """The parent of the output is a regular file: mkdir fails with the folder's name (works as root too)."""
    (tmp_path / "processed").write_text("not a folder")
    out = tmp_path / "processed" / "sentinel" / "x.tif"
    line = one_error_line(run(write_script(tmp_path, WRITE_SCRIPT), str(out)))
    assert line == f"error: {out.parent}: cannot write (Not a directory: a file is where a folder is needed)"


def test_read_only_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "sentinel"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: chmod does not stop writing (the file-in-the-way test covers this)")
        line = one_error_line(run(write_script(tmp_path, WRITE_SCRIPT), str(folder / "x.tif")))
        assert re.fullmatch(re.escape(f"error: {folder / 'x.tif'}: cannot write (") + r".*Permission denied.*\)",
                            line), line
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(("error", "message"), [
    (OSError(errno.EROFS, "Read-only file system", "/d/processed/sentinel/.a.tif.12-0a1b2c3d.partial"),
     "/d/processed/sentinel/a.tif: cannot write (Read-only file system)"),
    (PermissionError(errno.EACCES, "Permission denied", "/nonexistent/folder"),
     "/nonexistent/folder: cannot write (Permission denied)"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/d/x.json"), "/d/x.json: cannot write (Disk quota exceeded)"),
    (OSError(errno.ENOSPC, "No space left on device"), "output: cannot write (No space left on device)"),
    (OSError(errno.ECONNRESET, "Connection reset by peer", "/d/x"), None),
    (ValueError("a bug"), None),
])
def test_describe_fault_of_os_errors(error: BaseException, message: str | None) -> None:
    assert faults.describe_fault(error) == message


def test_describe_fault_of_a_raster_that_cannot_be_created() -> None:
    """As GDAL reports a read-only folder: the temporary name is shown as the destination."""
    from rasterio.errors import RasterioIOError

    error = RasterioIOError("Attempt to create new tiff file '/d/out/.x.tif.12-0a1b2c3d.partial' failed: "
                            "Permission denied")
    faults.note_raster(error, "/d/out/x.tif", writing=True)
    assert faults.describe_fault(error) == ("/d/out/x.tif: cannot write (Attempt to create new tiff file "
                                            "'/d/out/x.tif' failed: Permission denied)")


def test_describe_fault_of_a_gdal_error_without_rasterio_wrapper() -> None:
    from rasterio._err import CPLE_AppDefinedError

    error = CPLE_AppDefinedError(1, 1, "/d/processed/ground_truth/gt.tif, band 1: IReadBlock failed at X offset 0")
    assert faults.describe_fault(error) == (
        "/d/processed/ground_truth/gt.tif: damaged or unreadable raster (band 1: IReadBlock failed at X offset 0); "
        "rebuild it with 02b_restrict_water_area.py --force")


# ---------------------------------------------------------------------- interrupts
ATOMIC_SCRIPT = """
import time
from helpers.core.io import atomic_path

def main(argv):
    with atomic_path(sys.argv[1]) as tmp:
        tmp.mkdir()
        for i in range(50):
            (tmp / f"tile_{i:03d}.tif").write_bytes(b"x" * 1000)
        print("writing", flush=True)
        time.sleep(60)
    return 0
"""


def _default_signals() -> None:
    """In the child: Ctrl-C and SIGTERM at their defaults, as in a terminal.

    A test run started in the background (``make test &``, nohup) ignores SIGINT, and a child
    inherits that; the scripts keep an ignored signal ignored on purpose, so the test would wait.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_atomic_write_leaves_no_partial(tmp_path: Path, signum: int, status: int) -> None:
    out = tmp_path / "out" / "tiles"
    process = subprocess.Popen([sys.executable, str(write_script(tmp_path, ATOMIC_SCRIPT)), str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    try:
        assert process.stdout.readline() == "writing\n"
        assert len(partials(out.parent)) == 1
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == status, stderr
    assert stderr == "interrupted\n"
    assert list(out.parent.iterdir()) == []


def test_interrupt_during_imports_is_quiet(tmp_path: Path) -> None:
    """A script's first import installs a quiet exit; Ctrl-C while the heavy imports run prints one line."""
    script = tmp_path / "slow_imports.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(SRC)!r})
        from helpers.core.interrupts import exit_quietly_on_interrupt
        exit_quietly_on_interrupt()
        print("importing", flush=True)
        time.sleep(60)  # stands for TensorFlow and GDAL loading
        """), encoding="utf-8")
    for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, preexec_fn=_default_signals)
        try:
            assert process.stdout.readline() == "importing\n"
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
        assert (process.returncode, stderr) == (status, "interrupted\n")


def test_scripts_are_recognised() -> None:
    from helpers.core.interrupts import is_script

    assert is_script(str(SRC / "data_processing" / "00_make_demo_data.py"))
    assert is_script(str(SRC / "predict" / "classify.py"))
    assert not is_script(str(SRC / "helpers" / "io.py"))
    assert not is_script(None)


# ---------------------------------------------------------------------- in-process use
class Resource:
    def __init__(self) -> None:
        self.state = "new"

    def __enter__(self) -> Resource:
        self.state = "held"
        return self

    def __exit__(self, *exc: object) -> None:
        self.state = "released"


def test_run_cli_in_process_releases_resources_and_restores_handlers(capsys: pytest.CaptureFixture) -> None:
    resource = Resource()
    before = signal.getsignal(signal.SIGTERM)

    def main(argv: object) -> int:
        assert hold_until_exit(resource).state == "held"
        assert signal.getsignal(signal.SIGTERM) is not before
        raise InputError("x.toml: config key 'a': bad")

    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: x.toml: config key 'a': bad\n"
    assert resource.state == "released"
    assert signal.getsignal(signal.SIGTERM) is before


def test_bugs_keep_their_traceback(tmp_path: Path) -> None:
    def main(argv: object) -> int:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_cli(main, [])
    with pytest.raises(ZeroDivisionError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
        raise ZeroDivisionError
    assert list(tmp_path.iterdir()) == []
