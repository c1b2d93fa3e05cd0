"""Benchmarks of the central RADIUS server (see docs/benchmarks.md)."""
