"""Model inputs from numpy to the model's device: one function every model's forward pass uses.

On CUDA the array is copied into page-locked (pinned) host memory and sent with
``non_blocking=True``: the copy is a DMA the GPU runs on its stream while the host goes on
(building the next tensors of the batch), and kernels queued after it on that stream wait for
it. Torch's pinned-memory allocator keeps the pinned buffer until the copy has finished. On CPU
the array is wrapped without a copy (``torch.from_numpy``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_device"]


def to_device(x: Any, device: str, dtype: Any = None) -> Any:
    """``x`` (array-like) as a torch tensor on ``device`` (``dtype``: a torch dtype, optional).

    The values and shape are those of ``np.asarray(x)`` (cast to ``dtype`` when given; a
    C-contiguous array is not copied on CPU); on CUDA the copy goes through pinned memory
    without blocking the host.
    """
    import torch

    t = torch.from_numpy(np.asarray(x, order="C"))
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    if not str(device).startswith("cuda"):
        return t if str(device) == "cpu" else t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
