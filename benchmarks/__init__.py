"""Benchmarks of asgi-cache against its peers; see benchmarks/README.md."""
