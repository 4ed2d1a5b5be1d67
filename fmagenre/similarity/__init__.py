"""Tracks like this one: nearest neighbours in a feature space, on Spark.

:mod:`~fmagenre.similarity.space` fits the space (feature columns, standardisation, optional
PCA) on a feature table; :mod:`~fmagenre.similarity.index` builds and reads an index
directory (an IVF index: k-means centroids and one inverted list per centroid);
:mod:`~fmagenre.similarity.search` finds the ``k`` nearest tracks of queries (audio files,
feature rows or indexed tracks), exactly or by probing the nearest lists;
:mod:`~fmagenre.similarity.evaluation` measures recall, genre precision and speed.
``jobs/similar.py`` is the job.
"""
