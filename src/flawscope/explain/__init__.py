"""Explain layer."""
