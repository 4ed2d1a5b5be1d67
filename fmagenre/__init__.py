"""FMA music-genre features with librosa inside Spark jobs."""

from fmagenre.audio import numba_cache

numba_cache.configure()
