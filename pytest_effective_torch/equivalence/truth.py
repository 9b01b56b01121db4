"""The truth: the reference evaluated on float64 copies, looked up by output path.

A reference that ignores its float64 inputs (it raises, returns another type
or shape, or a lower-precision dtype) gives no float64 truth: the check then
warns with :class:`ReferenceNotDtypeGeneric`, notes it, and judges the
candidate against the reference in the working dtype.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import user_stacklevel
from ..formatting import dtype_name
from ..inputs import Args, arg_label, arg_value
from .compare import Leaf, index_leaves
from .options import CheckOptions
from .sides import Side


class ReferenceNotDtypeGeneric(UserWarning):
    """The reference ignored float64 inputs, so no float64 truth could be computed."""


class Truth:
    """Builds each trial's truth index; remembers (and warns once) when there is none."""

    def __init__(self, options: CheckOptions, side: Side | None) -> None:
        self.options = options
        self.side = side
        #: Set once the reference proved not dtype-generic.
        self.degraded_note: str | None = None

    def degrade(self, why: str) -> None:
        if self.degraded_note is None:
            self.degraded_note = (
                f"reference is not dtype-generic: given float64 inputs, {why}; no float64 truth, "
                f"so the candidate was judged against the reference in {dtype_name(self.options.dtype)}"
            )
            warnings.warn(self.degraded_note, ReferenceNotDtypeGeneric, stacklevel=user_stacklevel())

    def index(self, truth_out: Any, truth_args: Args, leaves: list[Leaf]) -> dict[str, Any]:
        """path -> truth for every output, declared-mutated argument and module buffer.

        Empty when the truth is unusable for this trial (the judge then uses
        the reference's own values).
        """
        import torch

        if truth_out is None:
            return {}
        index = index_leaves(truth_out, "output")
        for key in self.options.mutates:
            index.update(index_leaves(arg_value(truth_args, key), f"{arg_label(key)} after the call"))
        if self.side is not None and self.side.module is not None:
            for name, t_buf in self.side.module.named_buffers():
                index[f"buffer {name} after the call"] = t_buf
        if self.side is None:
            return index  # the reference run is the truth
        for leaf in leaves:
            if leaf.kind != "float" or not isinstance(leaf.reference, torch.Tensor):
                continue
            t = index.get(leaf.path)
            if not isinstance(t, torch.Tensor):
                self.degrade(f"it returned {type(t).__name__} at {leaf.path}")
                return {}
            if t.shape != leaf.reference.shape:
                self.degrade(f"it returned shape {tuple(t.shape)} at {leaf.path}")
                return {}
            if t.dtype not in (torch.float64, torch.complex128):
                self.degrade(f"it returned {dtype_name(t.dtype)} at {leaf.path}")
                return {}
        return index
