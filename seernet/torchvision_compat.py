"""Make ``import torchvision`` work beside our CPU build of torch, for timm and transformers.

The torchvision wheel pip finds for torch 2.13 (0.28.0) is built against the CUDA torch: its compiled
ops (``torchvision/_C.so``) do not load beside the CPU torch, and torchvision's import then fails while
registering fake kernels for ``torchvision::nms`` and ``torchvision::qnms``, the two ops it registers
unconditionally (``operator torchvision::nms does not exist``).  No CPU build of 0.28 is on the machines'
package index, so, as a last resort, we define those two op *schemas* before the import.  Nothing else
changes: torchvision's own check (``torchvision.extension._has_ops()``) still says its compiled ops are
missing, so detection ops (nms, roi_align, deform_conv2d) raise if called, and we never call them: timm and
transformers import torchvision for layers (``FrozenBatchNorm2d``) and transforms that are pure Python.
Where a torchvision that loads its ops is installed, this does nothing.
"""
from __future__ import annotations

import sys

import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library: torch.library.Library | None = None  # kept alive: dropping it would unregister the schemas


def _has_op(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def ensure_torchvision_importable() -> None:
    """Define the schemas torchvision's import needs, once, unless its compiled ops provide them; call before
    the first import of ``timm``, ``transformers`` or ``torchvision``."""
    global _library
    if "torchvision" in sys.modules or _library is not None:
        return
    missing = [s for s in _SCHEMAS if not _has_op(s.split("(", 1)[0])]
    if not missing:
        return
    try:
        import torchvision.extension  # noqa: F401  (its compiled ops load here, if they can)
    except RuntimeError:
        pass  # the failure this module exists for: fall through and define the schemas
    else:
        return
    for name in list(sys.modules):  # the failed import left half-initialised modules behind
        if name == "torchvision" or name.startswith("torchvision."):
            del sys.modules[name]
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        if not _has_op(schema.split("(", 1)[0]):
            _library.define(schema)
