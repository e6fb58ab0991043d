"""Data layer: files on disk -> validated `Sample` records -> tensors."""
