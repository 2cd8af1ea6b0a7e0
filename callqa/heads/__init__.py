"""Head kinds: one class per kind of head, owning everything that differs between kinds (see :mod:`.base`).

A new kind is a module with a :class:`HeadKind` subclass and a line in :data:`KINDS`; training registers a loss for
it only where it needs another than its base class's (``training.model.LOSSES``).
"""

from callqa.measures import DEFAULT_THRESHOLD, LOWER_IS_BETTER

from .base import HeadKind, HeadView, LabelError, registered, sigmoid, softmax
from .category import CategoryKind
from .levels import LevelKind
from .multiclass import MulticlassKind
from .multilabel import MultilabelKind
from .ordinal import OrdinalKind

KINDS: dict[str, HeadKind] = {kind.name: kind for kind in (OrdinalKind(), MulticlassKind(), MultilabelKind(),
                                                           CategoryKind())}

__all__ = ["DEFAULT_THRESHOLD", "KINDS", "LOWER_IS_BETTER", "CategoryKind", "HeadKind", "HeadView", "LabelError",
           "LevelKind", "MulticlassKind", "MultilabelKind", "OrdinalKind", "registered", "sigmoid", "softmax"]
