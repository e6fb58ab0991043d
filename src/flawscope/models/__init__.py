"""Models: importing this package registers every built-in model."""
