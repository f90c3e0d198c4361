"""Benchmarks (`make bench`): figures printed and saved under bench/results/, never pass/fail."""
