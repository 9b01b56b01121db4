"""Compile the Triton kernels for an H200 (sm_90) on a machine without a GPU.

``python tests/_triton_ptx.py`` prints, as JSON, each kernel's global memory
instructions in the PTX that the installed triton generates, by name and
count. Compiling needs no GPU (triton ships ptxas), so CPU-only CI catches
compiler failures (triton 3.6 asserted on an earlier form of the
cross-entropy kernel) and can check that the gather's row loads are 128-bit
vector loads. Run without ``TRITON_INTERPRET``: interpreted kernels are not
compiled.

The arguments are described as triton's launcher would specialise them for
the large gather (``HUGE``: a ``[65536, 16, 256]`` float32 source, one index
per row): pointers and integers divisible by 16 are marked so, integers
equal to 1 become constants.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from typing import Any

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from reference_impls import _triton_cross_entropy as ce
from reference_impls import _triton_gather as gather

TARGET = GPUTarget("cuda", 90, 32)


def _compile(
    kernel: Any, types: dict[str, str], constants: dict[str, Any], aligned: set[str], warps: int
) -> dict[str, int]:
    names = list(inspect.signature(kernel.fn).parameters)
    signature = {name: ("constexpr" if name in constants else types[name]) for name in names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(names) if name in aligned}
    source = ASTSource(kernel, signature=signature, constexprs=constants, attrs=attrs)
    compiled = triton.compile(source, target=TARGET, options={"num_warps": warps})
    found = re.findall(r"\b((?:ld|st|red|atom)\.global[.\w]*)", compiled.asm["ptx"])
    return dict(Counter(found))


def main() -> dict[str, dict[str, int]]:
    out = {}
    config = gather.gather_config(65536, 256, 4)
    blocks = {"BLOCK_R": config.block_rows, "BLOCK_D": config.block_cols, "EVEN_D": True}
    for dtype in ("fp32", "fp16", "bf16", "fp64"):
        types = {"src_ptr": f"*{dtype}", "idx_ptr": "*i64", "out_ptr": f"*{dtype}"}
        types |= dict.fromkeys(("rows", "n", "width", "stride_b", "stride_n"), "i32")
        out[f"gather {dtype}"] = _compile(
            gather._gather_kernel,
            types,
            {"per_batch": 1, "stride_d": 1, **blocks},
            {"src_ptr", "idx_ptr", "out_ptr", "rows", "n", "width", "stride_b", "stride_n"},
            config.num_warps,
        )
    for atomic in (False, True):
        types = {
            "grad_ptr": "*fp32",
            "idx_ptr": "*i64",
            "out_ptr": "*fp32",
            "rows": "i32",
            "per_batch": "i32",
        }
        types |= {"n": "i32", "width": "i32"}
        out[f"scatter_add atomic={atomic}"] = _compile(
            gather._scatter_add_kernel,
            types,
            {**blocks, "ATOMIC": atomic, **({} if atomic else {"per_batch": 1})},
            {"grad_ptr", "idx_ptr", "out_ptr", "rows", "n", "width"},
            config.num_warps,
        )
    for dtype, acc in (("fp32", "fp32"), ("fp16", "fp32"), ("bf16", "fp32"), ("fp64", "fp64")):
        config = ce.cross_entropy_config(4096, 4096, 8 if acc == "fp64" else 4)
        blocks = {"BLOCK_R": config.block_rows, "BLOCK_C": config.block_cols}
        pointers = {"labels_ptr": f"*{dtype}", "logits_ptr": f"*{dtype}", "lse_ptr": f"*{acc}"}
        pointers |= {"label_sum_ptr": f"*{acc}"}
        ints = dict.fromkeys(("rows", "cols", "stride_l", "stride_x"), "i32")
        aligned = {*pointers, *ints, "loss_ptr", "grad_ptr", "dlabels_ptr", "dlogits_ptr"}
        out[f"cross_entropy forward {dtype}"] = _compile(
            ce._forward_kernel,
            {**pointers, **ints, "loss_ptr": f"*{dtype}"},
            blocks,
            aligned,
            config.num_warps,
        )
        for labels_grad in (False, True):
            types = {
                **pointers,
                **ints,
                "grad_ptr": f"*{dtype}",
                "dlabels_ptr": f"*{dtype}",
                "dlogits_ptr": f"*{dtype}",
            }
            out[f"cross_entropy backward {dtype} labels_grad={labels_grad}"] = _compile(
                ce._backward_kernel,
                types,
                {**blocks, "LABELS_GRAD": labels_grad},
                aligned,
                config.num_warps,
            )
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
