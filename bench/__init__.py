"""Benchmarks (`make bench`): each bench_<part>.py prints its figures and writes bench/results/<part>.json."""
