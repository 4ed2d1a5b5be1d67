"""Classification metrics from a confusion matrix (accuracy, Cohen's kappa, F1): no Spark."""
