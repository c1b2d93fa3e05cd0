"""Helpers of the site gateway's benchmark (benchmarks/gateway_bench.py)."""
