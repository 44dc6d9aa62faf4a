"""Benchmarks: side-by-side ratios measured in one run (absolute times mean little here)."""
