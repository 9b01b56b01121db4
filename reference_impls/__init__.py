"""The "Effective PyTorch" guide's naive and optimized ops, checked by the plugin.

One module per topic of the guide (:mod:`~reference_impls.batch_gather`,
:mod:`~reference_impls.row_sum`, :mod:`~reference_impls.softmax`,
:mod:`~reference_impls.cross_entropy`, :mod:`~reference_impls.merge`,
:mod:`~reference_impls.broadcast_trap`, :mod:`~reference_impls.curve_fit`),
each with the naive version, the optimized ones, input builders and the
guide's claims as data. This module collects them:

- ``PAIRS``: name -> :class:`Pair` (reference, candidate, builders, flags);
- ``FITS``: name -> :class:`Fit` (training runs with target coefficients);
- ``CLAIMS``: every :class:`Claim`, in topic order.

The bundled suite (``reference_impls/test_claims.py``) is generated from
these; ``python -m reference_impls`` runs it and prints a table of every
claim. Reuse a pair in your own test::

    from reference_impls import PAIRS

    pair = PAIRS["cross_entropy.stable"]

    def test_my_loss(assert_same_as_reference, device, dtype):
        assert_same_as_reference(my_loss, pair.candidate, pair.inputs,
                                 device=device, dtype=dtype)
"""

from __future__ import annotations

from types import MappingProxyType

from . import batch_gather, broadcast_trap, cross_entropy, curve_fit, merge, row_sum, softmax
from ._registry import ALL_DTYPES, BASE_DTYPES, CLAIM_KINDS, Builder, Claim, Fit, Pair

TOPICS = (batch_gather, row_sum, softmax, cross_entropy, merge, broadcast_trap, curve_fit)

PAIRS: MappingProxyType[str, Pair] = MappingProxyType(
    {pair.name: pair for topic in TOPICS for pair in getattr(topic, "PAIRS", ())}
)
FITS: MappingProxyType[str, Fit] = MappingProxyType(
    {fit.name: fit for topic in TOPICS for fit in getattr(topic, "FITS", ())}
)
CLAIMS: tuple[Claim, ...] = tuple(claim for topic in TOPICS for claim in topic.CLAIMS)

__all__ = [
    "ALL_DTYPES",
    "BASE_DTYPES",
    "CLAIMS",
    "CLAIM_KINDS",
    "FITS",
    "PAIRS",
    "TOPICS",
    "Builder",
    "Claim",
    "Fit",
    "Pair",
    "batch_gather",
    "broadcast_trap",
    "cross_entropy",
    "curve_fit",
    "merge",
    "row_sum",
    "softmax",
]
