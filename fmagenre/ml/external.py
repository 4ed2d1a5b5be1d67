"""Members of the voting ensemble that are trained elsewhere (the spectrogram network).

An external member is not fitted by :class:`fmagenre.ml.ensemble.VotingEnsemble`: it brings
its class log-probabilities as an input column, ``margins_<name>`` (an array in the label
order of the training data, null for a row it cannot score), and the ensemble votes with them
beside its own models'. The layer that owns the member (e.g. :mod:`fmagenre.network`)
builds the :class:`ExternalMember`; :mod:`fmagenre.ml` never imports that layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from fmagenre.errors import InputError, shown_names

#: The folder of a training output that holds each external member's files, by name.
MEMBERS_DIR = "members"

_NAME = re.compile(r"[a-z][a-z0-9_]*")


class ExternalMemberError(InputError, ValueError):
    """An external member that cannot vote with the training data; the message says why."""


def margins_column(name: str) -> str:
    """The input column of an external member's class log-probabilities."""
    return f"margins_{name}"


@dataclass(frozen=True)
class ExternalMember:
    """A model trained elsewhere that votes in the ensemble.

    Attributes
    ----------
    name : str
        Its name in the ensemble (lower-case letters, digits and ``_``), e.g. ``network``.
    labels : tuple of str
        The genres of its outputs, in order.
    add_margins : callable
        ``rows -> rows`` with the array column :func:`margins_column` added: the member's
        class log-probabilities in ``labels`` order, null where it cannot score a row (lazy;
        it reads the columns it needs, e.g. ``patches``, from ``rows``).
    held_out : frozenset of int
        The training tracks (``track_id``) it was not fitted on: the only training rows where
        its predictions are honest, so the only ones the vote may be tuned on.
    save : callable
        ``directory -> None``: writes what prediction needs to rebuild the member (the
        training job calls it with ``OUTPUT/members/<name>``).
    source : str
        Where it came from (a model directory), for the report.
    """

    name: str
    labels: tuple[str, ...]
    add_margins: Callable[[DataFrame], DataFrame]
    held_out: frozenset[int]
    save: Callable[[str], None]
    source: str

    @property
    def column(self) -> str:
        return margins_column(self.name)


def check_names(members: Sequence[ExternalMember], taken: Sequence[str]) -> None:
    """ExternalMemberError unless the members' names are valid, unique and not in ``taken``
    (the ensemble's own models)."""
    names = [member.name for member in members]
    bad = [n for n in names if not _NAME.fullmatch(n) or n in taken or names.count(n) > 1]
    if bad:
        raise ExternalMemberError(
            f"external member name(s) {shown_names(sorted(set(bad)))}: names must be unique"
            f" [a-z][a-z0-9_]*, other than {', '.join(taken)}"
        )


def reordered(margins: Column, own: Sequence[str], labels: Sequence[str]) -> Column:
    """``margins`` (in ``own`` genre order) in ``labels`` order, null kept; ``margins`` itself
    when the orders agree. Every label must be in ``own`` (:func:`label_order` checks it)."""
    if list(own) == list(labels):
        return margins
    position = {genre: i for i, genre in enumerate(own)}
    return F.when(margins.isNotNull(), F.array(*(margins[position[label]] for label in labels)))


def label_order(member: ExternalMember, labels: Sequence[str]) -> list[int] | None:
    """Where each of ``labels`` is among the member's outputs: None when in the same order.

    Raises
    ------
    ExternalMemberError
        When the member's genres are not ``labels``, in some order.
    """
    own = list(member.labels)
    if own == list(labels):
        return None
    if sorted(own) == sorted(labels):
        return [own.index(label) for label in labels]
    only_member = sorted(set(own) - set(labels)) or ["none"]
    only_data = sorted(set(labels) - set(own)) or ["none"]
    repeated = " (it repeats genres)" if len(set(own)) != len(own) else ""
    raise ExternalMemberError(
        f"external member {member.name} ({member.source}) predicts other genres than the"
        f" training data{repeated}: only in {member.name}: {shown_names(only_member)}; only in"
        f" the training labels: {shown_names(only_data)}; train both on the same label table"
    )
