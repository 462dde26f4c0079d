"""Training: tile cache, normalisation, augmentation, generators, models, losses, runs and records."""
