"""Source text shared by the speed engine's pytester tests."""

#: ``busy(reps)``: a function doing ``reps`` 48x48 matmuls, named ``mm_x<reps>``,
#: so two of them differ in cost by a known factor.
BUSY = """
import os
import torch


def busy(reps):
    def work(x):
        for _ in range(reps):
            torch.mm(x, x)
        return x

    work.__qualname__ = f"mm_x{reps}"
    return work
"""
