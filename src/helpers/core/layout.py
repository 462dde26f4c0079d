"""Where every file of a study area lives: one module builds every path the pipeline reads or writes.

:class:`StudyAreaLayout` is a base of :class:`helpers.core.config.Config`, so every path is
``config.<name>``: the raw inputs and processed products under ``data_root``, the runs under
``models_root``, the reports under ``reports_root`` and the classified outputs. The modules that
write a file take its path from here and nowhere else, and so do the ones that read it.

Layout (``{L}`` the processing level, ``{D}`` a date, ``{run}`` a run or ensemble name)::

    {data_root}/raw/                                   inputs, never written
    {data_root}/processed/sentinel/{D}_{L}_all_bands.tif             step 01
    {data_root}/processed/clouds/{D}_{L}_clouds.tif (.json, .png)     step 03b
    {data_root}/processed/ground_truth/gt_rasterized.tif, gt_water_masked_{t}.tif, gt.tif, area.tif
    {data_root}/processed/training_data/{D}_data/{D}_{L}_merged.tif, tiles, tile summary, tile cache
    {data_root}/processed/classification_data/{D}_data/{D}_{L}_merged.tif, prediction windows
    {data_root}/processed/classified/{run}/             classify.py and change_detection.py outputs
    {data_root}/processed/.fingerprints/                freshness records of the steps
    {models_root}/{run}.keras (.skops), {run}_config.toml, _flags.json, _normalisation.json, _backup/
    {reports_root}/logs/{run}/                          TensorBoard
    {reports_root}/logs_and_plots/{run}/                training log, metrics, change reports
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING


def format_threshold(threshold: float) -> str:
    """Format an NDWI threshold for a file name (``-0.2``, ``0.0``, ``0.4``)."""
    value = round(float(threshold), 3) + 0.0  # + 0.0 turns -0.0 (e.g. from np.arange) into 0.0
    return f"{value:.1f}" if value == round(value, 1) else f"{value:g}"


@dataclass(frozen=True)
class RunPaths:
    """Every file and folder a training run writes."""

    run: str
    model: Path
    config_copy: Path
    flags: Path
    normalisation: Path
    backup: Path
    tensorboard: Path
    log_dir: Path

    @property
    def log_file(self) -> Path:
        """Training log with wall time."""
        return self.log_dir / f"{self.run}_training_log.txt"

    @property
    def history_csv(self) -> Path:
        """Per-epoch loss and metrics."""
        return self.log_dir / f"{self.run}_history.csv"

    @property
    def summary_json(self) -> Path:
        """The training summary (epochs, accuracies, wall time)."""
        return self.log_dir / f"{self.run}_training_summary.json"


class StudyAreaLayout:
    """The paths of a study area, built from :class:`~helpers.core.config.Config`'s roots and settings."""

    if TYPE_CHECKING:
        data_root: Path
        models_root: Path
        reports_root: Path
        tile_size: int

        def check_level(self, level: str | None) -> str: ...

    # ------------------------------------------------------------------ data
    @property
    def raw_dir(self) -> Path:
        """Raw inputs; read-only for every step."""
        return self.data_root / "raw"

    @property
    def processed_dir(self) -> Path:
        """Everything the pipeline writes about the data."""
        return self.data_root / "processed"

    def raw_sentinel_dir(self, level: str | None = None) -> Path:
        """Folder holding the Sentinel-2 products of a level."""
        return self.raw_dir / "sentinel" / f"level_{self.check_level(level)}"

    def scene_path(self, date: str, level: str | None = None) -> Path:
        """Clipped 10 m stack of one date (output of step 01)."""
        return self.processed_dir / "sentinel" / f"{date}_{self.check_level(level)}_all_bands.tif"

    def cloud_mask_path(self, date: str, level: str | None = None) -> Path:
        """Cloud and shadow mask of one date on the scene grid (output of step 03b)."""
        return self.processed_dir / "clouds" / f"{date}_{self.check_level(level)}_clouds.tif"

    @property
    def gt_dir(self) -> Path:
        """Processed ground-truth rasters."""
        return self.processed_dir / "ground_truth"

    @property
    def gt_rasterized_path(self) -> Path:
        """The GT burnt onto the scene grid, before water masking (step 02)."""
        return self.gt_dir / "gt_rasterized.tif"

    def gt_masked_path(self, threshold: float) -> Path:
        """The GT after NDWI shoreline masking at one threshold (step 02b)."""
        return self.gt_dir / f"gt_water_masked_{format_threshold(threshold)}.tif"

    @property
    def gt_path(self) -> Path:
        """The GT used by all later steps (the configured threshold's mask)."""
        return self.gt_dir / "gt.tif"

    @property
    def area_path(self) -> Path:
        """Area mask: 1 where the GT is non-zero and the reference scene has data."""
        return self.gt_dir / "area.tif"

    @property
    def extra_area_path(self) -> Path:
        """Mask of the classification-only areas (if any are configured)."""
        return self.gt_dir / "extra_area.tif"

    def date_dir(self, date: str, use: str) -> Path:
        """Per-date folder of TRAIN (training_data) or NEW (classification_data) products."""
        sub = "training_data" if use.upper() == "TRAIN" else "classification_data"
        return self.processed_dir / sub / f"{date}_data"

    def merged_path(self, date: str, level: str | None, use: str) -> Path:
        """Merged uint16 stack of step 04 (bands + gt, or bands + area masks)."""
        return self.date_dir(date, use) / f"{date}_{self.check_level(level)}_merged.tif"

    def tiles_dir(self, date: str, level: str | None, split: str) -> Path:
        """Folder of one date's tiles of one subset."""
        size = self.tile_size
        return self.date_dir(date, "TRAIN") / (
            f"{date}_{self.check_level(level)}_{split}_tiles_({size}x{size})"
        )

    def tiles_summary_path(self, date: str, level: str | None) -> Path:
        """Summary JSON written last by the tiling step (its presence marks completion)."""
        return self.date_dir(date, "TRAIN") / f"{date}_{self.check_level(level)}_tiles_summary.json"

    def prediction_windows_path(self, date: str, level: str | None) -> Path:
        """CSV index of the prediction windows of a NEW date."""
        return self.date_dir(date, "NEW") / f"{date}_{self.check_level(level)}_prediction_windows.csv"

    @property
    def tile_endings_path(self) -> Path:
        """List of the reference date's tile endings (``tile_RRR_CCC``), one per line."""
        return self.processed_dir / "all_tile_endings.txt"

    @property
    def split_path(self) -> Path:
        """The train/valid/test assignment of every tile ending."""
        return self.processed_dir / "tile_split.json"

    @property
    def water_mask_summary_path(self) -> Path:
        """What step 02b found at every NDWI threshold (read by the pre-processing summary)."""
        return self.gt_dir / "water_mask_summary.json"

    def tile_cache_paths(self, date: str, split: str, level: str | None = None) -> tuple[Path, Path, Path]:
        """The tile cache of one split of one date: bands, labels and endings, beside the tile folder.

        ``{date}_{level}_{split}_x.npy``, ``..._y.npy`` and ``..._endings.txt``.
        """
        base = self.date_dir(date, "TRAIN") / f"{date}_{self.check_level(level)}_{split}"
        return Path(f"{base}_x.npy"), Path(f"{base}_y.npy"), Path(f"{base}_endings.txt")

    def classified_dir(self, name: str) -> Path:
        """The classification outputs of a run or ensemble (class maps, change maps) in this study area."""
        return self.processed_dir / "classified" / name

    # ------------------------------------------------------------------ reports
    def report_dir(self, name: str) -> Path:
        """The report folder of a run or ensemble: ``{reports_root}/logs_and_plots/{name}/``."""
        return self.reports_root / "logs_and_plots" / name

    def tensorboard_dir(self, run: str) -> Path:
        """The TensorBoard folder of a run: ``{reports_root}/logs/{run}/``."""
        return self.reports_root / "logs" / run

    def change_report_paths(self, name: str) -> dict[str, Path]:
        """The change-detection reports of a model (``json`` and ``txt``), in its report folder."""
        folder = self.report_dir(name)
        return {"json": folder / f"{name}_change_detection.json", "txt": folder / f"{name}_change_detection.txt"}

    # ------------------------------------------------------------------ runs
    def run_paths(self, run: str, model_suffix: str = ".keras") -> RunPaths:
        """Every file and folder of a training run ``run`` (a random forest's model ends in ``.skops``)."""
        models = self.models_root
        return RunPaths(run, models / f"{run}{model_suffix}", models / f"{run}_config.toml",
                        models / f"{run}_flags.json", models / f"{run}_normalisation.json", models / f"{run}_backup",
                        self.tensorboard_dir(run), self.report_dir(run))
