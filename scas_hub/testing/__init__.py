"""Helpers for tests, benchmarks and the bundled demo: synthetic corpora and tiny models."""
