"""Benchmarks: ``python -m fmagenre.bench extract|spark|analysis|train|cpu-drift``."""
