"""Model inputs reach the device with their values, shape and dtype (pinned, non-blocking on CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

from eoembed.models.transfer import to_device

torch = pytest.importorskip("torch")


def _inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    return {"contiguous": x, "transposed": x.transpose(0, 2, 3, 1), "float64": x.astype(np.float64),
            "int64": rng.integers(0, 12, size=(3, 2)), "scalar": np.float32(2.5),
            "list": [[1.0, 2.0], [3.0, 4.0]]}


@pytest.mark.parametrize("name", list(_inputs()))
def test_cpu_tensor_has_the_array_values_shape_and_dtype(name):
    x = _inputs()[name]
    t = to_device(x, "cpu")
    ref = np.asarray(x)
    assert t.device.type == "cpu" and tuple(t.shape) == ref.shape
    assert t.dtype == torch.from_numpy(np.ascontiguousarray(ref)).dtype
    np.testing.assert_array_equal(t.numpy(), ref)
    f32 = to_device(x, "cpu", torch.float32)
    assert f32.dtype == torch.float32 and tuple(f32.shape) == ref.shape
    np.testing.assert_array_equal(f32.numpy(), ref.astype(np.float32))


def test_cpu_does_not_copy_a_contiguous_array():
    x = _inputs()["contiguous"]
    assert np.shares_memory(to_device(x, "cpu").numpy(), x)
    assert not np.shares_memory(to_device(x.transpose(0, 2, 3, 1), "cpu").numpy(), x)  # made contiguous


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_copy_is_pinned_non_blocking_and_exact():
    for name, x in _inputs().items():
        t = to_device(x, "cuda", torch.float32 if name == "float64" else None)
        assert t.is_cuda
        back = t.cpu().numpy()  # synchronises with the copy
        np.testing.assert_array_equal(back, np.asarray(x, dtype=back.dtype))
