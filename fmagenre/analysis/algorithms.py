"""The classifiers of the model comparison: the thesis' algorithms (Tables 3-6).

scikit-learn's and XGBoost's defaults, single-threaded (one core per grid cell), behind a
standard scaler and, when the feature set asks for one, a PCA.
"""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from xgboost import XGBClassifier

#: Algorithm names of the command line, with the thesis' labels, in its tables' order.
ALGORITHMS: dict[str, str] = {
    "lr": "LR",
    "knn": "kNN",
    "svc": "SVC",
    "linsvc": "linSVC",
    "rf": "RF",
    "nb": "NB",
    "qda": "QDA",
    "xgb": "XGB",
    "gbc": "GBC",
}
#: Kernel methods whose cost grows with the square of the training rows.
SLOW_KERNELS = ("svc", "knn")
#: Minutes per cell on all 518 columns in the thesis (Table 6; GBC from Table 4's ratio to
#: XGB): a cost estimate to start the longest cells first.
THESIS_MINUTES_ALL: dict[str, float] = {
    "lr": 0.22, "knn": 41.1, "svc": 128.3, "linsvc": 26.7, "rf": 0.62, "nb": 0.15,
    "qda": 0.45, "xgb": 118.4, "gbc": 190.0,
}  # fmt: skip


def check_algorithms(names: Sequence[str]) -> None:
    """Raise ValueError on an unknown or repeated algorithm name."""
    for name in names:
        if name not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {name!r} (choose from {', '.join(ALGORITHMS)})")
    if len(set(names)) != len(names):
        raise ValueError("an algorithm is named twice")


def make_classifier(algorithm: str, *, seed: int = 0):
    """An unfitted classifier, single-threaded, seeded where it draws at random."""
    check_algorithms([algorithm])
    factories = {
        "lr": lambda: LogisticRegression(max_iter=1000),
        "knn": lambda: KNeighborsClassifier(n_jobs=1),
        "svc": lambda: SVC(random_state=seed),
        "linsvc": lambda: LinearSVC(random_state=seed),
        "rf": lambda: RandomForestClassifier(n_jobs=1, random_state=seed),
        "nb": GaussianNB,
        "qda": QuadraticDiscriminantAnalysis,
        "xgb": lambda: XGBClassifier(tree_method="hist", n_jobs=1, random_state=seed),
        "gbc": lambda: GradientBoostingClassifier(random_state=seed),
    }
    return factories[algorithm]()


def make_pipeline(algorithm: str, *, pca_components: int = 0, seed: int = 0) -> Pipeline:
    """Standard scaler, optional PCA to ``pca_components``, then the classifier."""
    if pca_components < 0:
        raise ValueError(f"pca_components must be >= 0, got {pca_components}")
    steps = [("scale", StandardScaler())]
    if pca_components:
        steps.append(("pca", PCA(n_components=pca_components, random_state=seed)))
    steps.append(("model", make_classifier(algorithm, seed=seed)))
    return Pipeline(steps)
