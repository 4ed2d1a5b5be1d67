"""Audio in, 518 features out: decoding, FMA's recipe (fast and plain), feature names and sets.

Pure Python and NumPy: no Spark. The numba cache set-up of the recipe's kernels lives here too.
"""
