"""Workload traces: requests with shared prompt segments, generators, mixer, Parquet I/O, loaders."""
