"""The extraction on Spark: listing the audio files (driver), analysing them (Python workers)."""
