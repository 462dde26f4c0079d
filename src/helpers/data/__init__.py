"""Pre-processing: Sentinel-2 ingestion, ground truth, tiles, the split and the numbered steps."""
