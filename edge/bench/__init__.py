"""Benchmarks: each prints p50/p95, throughput, peak RSS and a same-run baseline ratio."""
