"""The windowed alarm, from its one home: :mod:`fedcl.model._vote` is numpy only, and ``fedcl.model``
loads its torch modules lazily, so importing it here pulls in no torch."""

from fedcl.model._vote import majority_vote

__all__ = ["majority_vote"]
