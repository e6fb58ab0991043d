"""Deploy layer."""
