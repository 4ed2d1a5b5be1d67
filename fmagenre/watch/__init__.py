"""New uploads classified as they land: the streaming job of ``jobs/watch.py``."""
