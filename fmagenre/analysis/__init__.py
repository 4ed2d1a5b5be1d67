"""The thesis' analysis on Spark: exploration, feature selection, model comparison, reports.

The top layer: only the analysis jobs import it.
"""
