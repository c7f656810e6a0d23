"""Benchmark datasets, one module per format. Modules are discovered automatically."""
