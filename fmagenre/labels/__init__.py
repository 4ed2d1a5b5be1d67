"""FMA's metadata and genres: the tracks and genres tables, the genre tree, genre imputation.

Pure Python and pandas: no Spark.
"""
