"""Measurements of speed (run as modules: python -m benchmarks.NAME)."""
