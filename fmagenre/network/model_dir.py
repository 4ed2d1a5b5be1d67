"""The network's model directory and :class:`NetworkModel`, its inference API.

Layout (any Hadoop path)::

    MODEL_DIR/network/weights.pt     the state_dict (torch.save)
    MODEL_DIR/network/network.json   kind "network", genres in order, patch settings,
                                     extractor version, architecture, per-band normalisation,
                                     the epoch kept, the validation tracks
    MODEL_DIR/metrics.json, report.md, confusion_network.csv/.png   the test report
    MODEL_DIR/_checkpoint/           while training (removed when the run ends)

The kind of a model directory is read from it (:func:`model_kind`): ``network/network.json``
is a network, ``model/`` the MIR voting ensemble of ``jobs/train.py``.

This module imports without torch; loading a model asks for it
(:func:`fmagenre.network.require_torch`).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping

import numpy as np
from pyspark.sql import SparkSession

from fmagenre.audio.patches import PatchSettings
from fmagenre.network import require_torch
from fmagenre.platform.hadoop import path_exists, read_bytes

NETWORK_DIR = "network"
WEIGHTS = "weights.pt"
INFO = "network.json"
KIND = "network"
#: Version of ``network.json``'s layout.
FORMAT = 1
#: The MIR ensemble's folder in a ``jobs/train.py`` output.
ENSEMBLE_DIR = "model"
_MAGIC = b"fmagenre-network\n"


def _join(path: str, *names: str) -> str:
    return "/".join((path.rstrip("/"), *names))


def info_path(path: str) -> str:
    return _join(path, NETWORK_DIR, INFO)


def weights_path(path: str) -> str:
    return _join(path, NETWORK_DIR, WEIGHTS)


def is_network_model(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` (any Hadoop path) holds a network model (``network/network.json``)."""
    return path_exists(spark, info_path(path))


def model_kind(spark: SparkSession, path: str) -> str | None:
    """``"network"``, ``"ensemble"`` (the MIR voting ensemble) or None for neither."""
    if is_network_model(spark, path):
        return KIND
    if path_exists(spark, _join(path, ENSEMBLE_DIR)):
        return "ensemble"
    return None


class NetworkModel:
    """A trained network, ready to score patches on one thread.

    Attributes
    ----------
    genres : list of str
        The genre of each output, in order.
    settings : PatchSettings
        How the patches it takes were made.
    extractor_version : str
        The extractor version of the patches it was trained on.
    info : dict
        Everything of ``network.json``.
    """

    def __init__(self, info: Mapping, weights: bytes):
        torch = require_torch()
        from fmagenre.network.model import Architecture, GenreCNN, PatchNormaliser

        if info.get("kind") != KIND:
            raise ValueError(f"not a network's description (kind {info.get('kind')!r})")
        self.info = dict(info)
        self.genres = list(info["genres"])
        self.settings = PatchSettings.from_dict(info["patch_settings"])
        self.extractor_version = info["extractor_version"]
        self._weights = bytes(weights)
        torch.set_num_threads(1)
        self._model = GenreCNN(Architecture.from_dict(info["architecture"]))
        state = torch.load(io.BytesIO(self._weights), map_location="cpu", weights_only=True)
        self._model.load_state_dict(state)
        self._model.eval()
        norm = info["normalisation"]
        self._normaliser = PatchNormaliser(norm["mean"], norm["std"])

    @classmethod
    def load(cls, spark: SparkSession, path: str) -> NetworkModel:
        """The network saved in the model directory ``path`` (any Hadoop path).

        Raises
        ------
        FileNotFoundError
            When ``path`` holds no network (:func:`is_network_model`).
        fmagenre.network.TorchMissingError
            Without torch.
        """
        require_torch()
        try:
            info = json.loads(read_bytes(spark, info_path(path)))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path} holds no network model ({NETWORK_DIR}/{INFO})"
            ) from None
        return cls(info, read_bytes(spark, weights_path(path)))

    def to_bytes(self) -> bytes:
        """The model as one byte string, for Python workers (:meth:`from_bytes`)."""
        header = json.dumps(self.info, sort_keys=True).encode("utf-8")
        return _MAGIC + struct.pack("<Q", len(header)) + header + self._weights

    @classmethod
    def from_bytes(cls, data: bytes) -> NetworkModel:
        if not data.startswith(_MAGIC):
            raise ValueError("not the bytes of NetworkModel.to_bytes")
        start = len(_MAGIC) + 8
        (size,) = struct.unpack("<Q", data[len(_MAGIC) : start])
        return cls(json.loads(data[start : start + size]), data[start + size :])

    def patch_log_probs(self, patches: np.ndarray) -> np.ndarray:
        """float32 ``(n, genres)``: each patch's log-probabilities, from uint8
        ``(n, n_mels, frames)`` patches."""
        from fmagenre.network.model import patch_log_probs

        require_torch().set_num_threads(1)
        return patch_log_probs(self._model, self._normaliser, patches)

    def track_log_probs(self, patches: np.ndarray) -> np.ndarray:
        """float32 ``(genres,)``: the mean of the patches' log-probabilities (a track's, or a
        timeline window's); ValueError without patches."""
        from fmagenre.network.model import track_log_probs

        return track_log_probs(self.patch_log_probs(patches))

    @property
    def embedding_width(self) -> int:
        """Values of the last hidden layer (:meth:`track_embedding`)."""
        return self._model.embedding_width

    def track_embedding(self, patches: np.ndarray) -> np.ndarray:
        """float32 ``(embedding_width,)``: the mean of the patches' last hidden layer, the
        track's point in the network's similarity space; ValueError without patches."""
        from fmagenre.network.model import patch_embeddings

        if len(patches) == 0:
            raise ValueError("a track needs at least one patch")
        require_torch().set_num_threads(1)
        embeddings = patch_embeddings(self._model, self._normaliser, patches)
        return embeddings.mean(axis=0, dtype=np.float32)

    def __repr__(self) -> str:
        return f"NetworkModel({len(self.genres)} genres, epoch {self.info.get('epoch')})"
