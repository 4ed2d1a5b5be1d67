"""Generated data for tests, samples and benchmarks: music, an FMA-shaped corpus, feature tables."""
