"""The spectrogram network: a small CNN on log-mel patches, trained on Spark with PyTorch.

A Spark layer beside :mod:`fmagenre.ml` (it reuses its report writers and class weights).
Only this package imports torch, an optional extra (``pip install 'fmagenre[dl]'``), and this
module and :mod:`~fmagenre.network.model_dir` import without it: asking for a network without
torch raises :class:`~fmagenre.errors.InputError` with the line to run.

- :mod:`~fmagenre.network.model`: the architecture (needs torch);
- :mod:`~fmagenre.network.model_dir`: the saved model directory and :class:`NetworkModel`,
  the inference API;
- :mod:`~fmagenre.network.data`: the patches table's files and the driver-side plan of a run;
- :mod:`~fmagenre.network.ranks`: what each training process runs (needs torch);
- :mod:`~fmagenre.network.training`: the training job's library side (TorchDistributor).
"""

from __future__ import annotations

import importlib

from fmagenre.errors import InputError

#: The one line that says how to get torch.
TORCH_HINT = 'the spectrogram network needs PyTorch: pip install "fmagenre[dl]"'


class TorchMissingError(InputError, ImportError):
    """PyTorch is not installed (or cannot be imported)."""


def require_torch():
    """The ``torch`` module, or raise :class:`TorchMissingError` with :data:`TORCH_HINT`."""
    try:
        return importlib.import_module("torch")
    except ImportError as error:
        raise TorchMissingError(f"{TORCH_HINT} ({error})") from None
