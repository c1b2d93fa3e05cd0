"""The parts of benchmarks/checkin_bench.py: the slow link, the visitor."""
