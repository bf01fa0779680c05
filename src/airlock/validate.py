"""Validation (the dry run): simulate a plan on a view of the tree and report what it would do.

The parts, each in its own module:

* :mod:`airlock.validation`: the report, as data (:class:`Validation`, :class:`Change`,
  :class:`Issue`);
* :mod:`airlock.view`: the view of the tree the plan is simulated on;
* :mod:`airlock.simulate`: the simulation of each operation, and :func:`validate`;
* :mod:`airlock.digests`: content digests, and the identity of what a move carries;
* :mod:`airlock.preconditions`: the state recorded of every path looked at, and
  :func:`stale_paths`, the check at apply that it still holds.

This module names them for callers: ``from airlock.validate import validate, Validation``.
"""

from __future__ import annotations

from airlock.digests import entry_identity, tree_digest, tree_identity
from airlock.preconditions import stale_paths
from airlock.simulate import validate
from airlock.validation import Action, Change, Issue, Validation

__all__ = [
    "Action",
    "Change",
    "Issue",
    "Validation",
    "entry_identity",
    "stale_paths",
    "tree_digest",
    "tree_identity",
    "validate",
]
