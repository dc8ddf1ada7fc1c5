"""Benchmarks of indexing and search speed: `python -m bench.run --device cpu|cuda [--quick]`.

Results go to bench/out/*.json (ignored by git) and a section appended to bench/RESULTS.md.
"""
