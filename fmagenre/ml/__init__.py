"""Spark ML: the three classifiers, the voting ensemble, kappa, the search, training, prediction."""
