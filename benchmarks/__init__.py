"""Benchmarks: numbers, never assertions on time."""
