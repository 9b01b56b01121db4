"""Deliberately broken candidates shared by several test modules."""

from __future__ import annotations

import torch


class BadSquare(torch.autograd.Function):
    """``x * x`` forward, but a backward of ``x`` instead of ``2 * x``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x  # should be 2 * x
