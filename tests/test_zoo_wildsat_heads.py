"""WildSAT's ResNet-50 and Swin-T paths (``wildsat_rn50``, ``wildsat_swint``): no oracle of the
original code exists for them, so they are checked against torchvision (the library the original
builds them with) and WildSAT's heads recomputed here from the same weights:

1. parity: the embedder's 256-d image embedding = ``decoder.backbone3`` applied to torchvision's
   ``resnet50`` / ``swin_t`` logits, both loaded from one seeded ``satellite_state_dict``;
2. key layout: the published container (``ckpt['satellite_state_dict']``, DataParallel's ``module.``
   prefix) loads; a file without the prefix, without the ImageNet layer, or of the other
   architecture is refused with the keys named;
3. preprocessing: the same declared input as the ViT-B/16 path (one spec), checked on a real patch by
   ``tests/test_zoo_embedders.py::test_framework_batch_equals_published_transform``; here: the batch
   of both ids equals the ViT's for the same composite.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tvm = pytest.importorskip("torchvision.models")

from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from zoo_helpers import random_state, ready, write  # noqa: E402

ARCH = {"wildsat_rn50": "resnet50", "wildsat_swint": "swin_t"}


def published_file(mid: str, tmp_path, seed: int, transform=lambda sd: sd):
    """Seeded weights of the original's SingleTaskModel in its checkpoint container."""
    backbone = getattr(tvm, ARCH[mid])(weights=None)
    state = {f"backbone.{k}": v for k, v in random_state(backbone, seed=seed, he=True).items()}
    g = torch.Generator().manual_seed(seed + 1)
    for i in (1, 2, 3):
        state[f"decoder.backbone{i}.0.weight"] = torch.randn(256, 1000, generator=g) * 0.03
    container = {"satellite_state_dict": transform({f"module.{k}": v for k, v in state.items()})}
    name = get_card(mid).weights[0].name
    path, sha = write(container, tmp_path / name)  # torch.save of the whole container
    return state, name, path, sha


def model_from(mid, name, path, sha):
    return create(mid, weights_paths={name: path}, weights_pins={name: sha})


@pytest.mark.parametrize("mid", sorted(ARCH))
def test_parity_with_torchvision_and_the_heads(mid, tmp_path):
    state, name, path, sha = published_file(mid, tmp_path, seed=4)
    model = model_from(mid, name, path, sha)
    model.load()
    lib = getattr(tvm, ARCH[mid])(weights=None).eval()
    lib.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 224, 224)).astype(np.float32)
    got = model.forward(ready(x, ("B04", "B03", "B02"))).features[:, :, 0, 0]
    with torch.inference_mode():
        logits = lib(torch.from_numpy(x))
        want = (logits @ state["decoder.backbone3.0.weight"].T).numpy()
        text = (logits @ state["decoder.backbone1.0.weight"].T).numpy()
    assert got.shape == (2, 256)
    assert np.abs(want).max() > 1e-3 and np.abs(want[0] - want[1]).max() > 1e-4
    assert np.abs(got - want).max() <= 1e-5
    assert np.abs(text - want).max() > 1e-3  # the image branch (backbone3), not the text one


def test_key_layout(tmp_path):
    mid = "wildsat_rn50"
    model_from(mid, *published_file(mid, tmp_path, seed=1)[1:]).load()
    no_prefix = published_file(mid, tmp_path, seed=1,
                               transform=lambda sd: {k[len("module."):]: v for k, v in sd.items()})
    with pytest.raises(Exception, match=r"module\."):
        model_from(mid, *no_prefix[1:]).load()
    no_fc = published_file(mid, tmp_path, seed=1,
                           transform=lambda sd: {k: v for k, v in sd.items() if ".fc." not in k})
    with pytest.raises(Exception, match=r"missing keys \['backbone\.fc\.bias', 'backbone\.fc\.weight'\]"):
        model_from(mid, *no_fc[1:]).load()
    swin = published_file("wildsat_swint", tmp_path, seed=1)
    with pytest.raises(Exception, match=r"missing keys \['backbone\.bn1\.bias'"):
        model_from(mid, swin[1].replace("swint", "rn50"), swin[2], swin[3]).load()


def test_both_paths_take_the_vit_path_input():
    vit, rn50, swint = (create(m).inputs()[0] for m in ("wildsat", "wildsat_rn50", "wildsat_swint"))
    assert rn50 == vit and swint == vit
    assert get_card("wildsat_rn50").verified == "library" and get_card("wildsat").verified == "oracle"
    # no published sha256: the user is told to pin one, with the README's Drive file for Swin-T/ImageNet1k
    with pytest.raises(WeightsError, match=r"does not pin a sha256.*drive\.google\.com/uc\?id=12rfb3ES9"):
        create("wildsat_swint", weights_paths={"swint-imagenet-wildsat.pth": "/nonexistent/x.pth"}).load()
