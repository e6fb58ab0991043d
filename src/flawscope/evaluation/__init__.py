"""Evaluation layer."""
