"""Dataset format indexers."""
