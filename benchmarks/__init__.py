"""Benchmarks (not tests): ``python -m benchmarks.sweep|notify|chat``; see README "Performance"."""
