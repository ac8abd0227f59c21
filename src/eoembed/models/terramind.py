"""TerraMind 1.0 (Jakubik et al. 2025): the any-to-any EO model's encoder on raw S2 L2A, via TerraTorch 1.2.1.

Architecture: ``terratorch.models.backbones.terramind.model.terramind_register.terramind_v1_<size>``
(``TerraMindViT``): the ``untok_sen2l2a@224`` patch embedding (a bias-free linear over 16 x 16 x 12
patches, channels last, plus a fixed 2-D sin-cos position table and a learned modality embedding),
then the encoder blocks and the final norm; no CLS token. tiny / small: GELU MLP with biases; base /
large: SwiGLU without biases (TerraTorch's builders). Weights: the published
``ibm-esa-geospatial/TerraMind-1.0-<size>`` ``TerraMind_v1_<size>.pt``, a plain state dict of the whole
encoder-decoder (``encoder_embeddings.<modality>.*``, ``encoder.<i>.*``, ``encoder_norm.*``,
``decoder*``, ...) with no prefix: TerraTorch's own loader keeps the keys its ViT has
(``checkpoint_filter_fn``), the other modalities and the decoder are unused. eoembed first checks
every parameter of the S2 L2A encoder is there with its shape (the fixed buffers, the sin-cos table and
the zero biases of the bias-free norms, may be absent: the library's own values are then kept, as
``checkpoint_filter_fn`` does).

Declared input: Sentinel-2 L2A, the 12 bands TerraMind was pre-trained on (``PRETRAINED_BANDS``:
COASTAL_AEROSOL, BLUE, GREEN, RED, RED_EDGE_1-3, NIR_BROAD, NIR_NARROW, WATER_VAPOR, SWIR_1, SWIR_2 =
B01-B09, B8A, B11, B12, no B10), one frame, 224 px by resize at 10 m, each band standardised with the
published v1 statistics (``v1_pretraining_mean/std["untok_sen2l2a@224"]``, not the v0.1 ones), gaps
set to 0 after standardisation. Tokens: the last block's patch tokens after the final norm (14 x 14);
pooled = their mean (the framework's weighted mean over the tokens inside the ROI).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.errors import WeightsError
from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.transfer import to_device

#: TerraTorch's TerraMind band names of the S2 L2A modality, in the pre-training order -> S2 bands
TERRAMIND_BANDS = {"COASTAL_AEROSOL": "B01", "BLUE": "B02", "GREEN": "B03", "RED": "B04", "RED_EDGE_1": "B05",
                   "RED_EDGE_2": "B06", "RED_EDGE_3": "B07", "NIR_BROAD": "B08", "NIR_NARROW": "B8A",
                   "WATER_VAPOR": "B09", "SWIR_1": "B11", "SWIR_2": "B12"}
BANDS = tuple(TERRAMIND_BANDS.values())
#: terramind_register.v1_pretraining_mean / _std["untok_sen2l2a@224"] (reflectance x 10000)
MEAN = (1390.458, 1503.317, 1718.197, 1853.91, 2199.1, 2779.975, 2987.011, 3083.234, 3132.22, 3162.988,
        2424.884, 1857.648)
STD = (2106.761, 2141.107, 2038.973, 2134.138, 2085.321, 1889.926, 1820.257, 1871.918, 1753.829, 1797.379,
       1434.261, 1334.311)
MODALITY = "untok_sen2l2a@224"
PATCH = 16
HF = "https://huggingface.co/ibm-esa-geospatial"
#: variant -> dims
VARIANTS = {"tiny": 192, "small": 384, "base": 768, "large": 1024}
LAYOUT = ("plain state dict of the whole TerraMind 1.0 encoder-decoder as published: "
          f"encoder_embeddings.{MODALITY}.*, encoder.<i>.*, encoder_norm.* (+ other modalities, decoder*), "
          "no prefix")
#: top-level names of the published file that are not part of the S2 L2A encoder eoembed runs
OTHER = ("encoder_embeddings.", "decoder", "mask_token", "register_tokens")

S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a",), bands=BANDS,
    norm=tuple(BandNorm(m, s) for m, s in zip(MEAN, STD)), gsd_m=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=PATCH, default_prep="resize"), missing="fill_zero",
    norm_source="terratorch 1.2.1 terramind_register v1_pretraining_mean / v1_pretraining_std "
                "['untok_sen2l2a@224'] (TerraMind 1.0, not v0.1), (x - mean) / std of S2 L2A "
                "reflectance x 10000; NoData -> 0 after standardisation")


def _card(size: str) -> ModelCard:
    file = f"TerraMind_v1_{size}.pt"
    repo = f"TerraMind-1.0-{size}"
    return ModelCard(
        id=f"terramind_v1_{size}", family="terratorch", kind="on_the_fly", variant=size,
        description=f"TerraMind 1.0 {size}: encoder of the any-to-any EO model on raw S2 L2A (12 bands), "
                    "via TerraTorch",
        inputs=(S2_INPUT,), dims=VARIANTS[size], outputs=("pooled", "grid"),
        weights=(WeightsFile(name=file, url=f"{HF}/{repo}/resolve/main/{file}", sha256="",
                             licence="Apache-2.0"),),
        verified="library", licence="Apache-2.0",
        citation="Jakubik, J., Yang, F., Blumenstiel, B., et al. (2025). TerraMind: Large-Scale Generative "
                 "Multimodality for Earth Observation. arXiv:2504.11171",
        url=f"{HF}/{repo}", mem_mb={"tiny": 2000, "small": 3000, "base": 4000}.get(size, 8000),
        runtime_min=60,
        notes="Raw S2 L2A input only (TerraMind's other modalities, S1, DEM, LULC, NDVI, coordinates, "
              "and its tokenizers are not used). 12 bands, one frame, 224 px by resize (2.24 km at 10 m), "
              "published v1 z-score statistics. Uncertain: whether the pre-training L2A (TerraMesh) kept "
              "the +1000 BOA offset of processing baseline 04.00+; eoembed feeds reflectance x 10000 "
              "without it. Tokens: last block after the final norm, no CLS; pooled = mean of the patch "
              "tokens. Hugging Face publishes no sha256 for the file: pin it in models.<id>.weights_sha256.")


class TerraMind(Embedder):
    """TerraMind 1.0 encoder on raw S2 L2A (TerraTorch); variants tiny, small, base, large."""

    cards: ClassVar[dict[str, ModelCard]] = {v: _card(v) for v in VARIANTS}
    card: ClassVar[ModelCard] = cards["base"]
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8}

    def build(self):
        """TerraTorch's TerraMind ViT of this size with the raw S2 L2A modality (untrained, no download)."""
        from terratorch.models.backbones.terramind.model import terramind_register

        builder = getattr(terramind_register, f"terramind_v1_{self.card.variant}")
        return builder(modalities=["S2L2A"], pretrained=False)

    def encoder_state(self, state: dict[str, Any], net: Any, where: str) -> dict[str, Any]:
        """The published state dict -> the encoder's, checked: every parameter of the S2 L2A encoder
        present with its shape, nothing else but other modalities' embeddings and the decoder."""
        from terratorch.models.backbones.terramind.model.terramind_register import checkpoint_filter_fn

        want = net.state_dict()
        params = {k for k, _ in net.named_parameters()}
        missing = sorted(k for k in params if k not in state)
        other = sorted(k for k in state if k not in want and not k.startswith(OTHER))
        wrong = [f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in want.items()
                 if k in state and tuple(state[k].shape) != tuple(v.shape)]
        if missing or other or wrong:
            raise WeightsError(
                f"weights file {where}: not the published key layout ({LAYOUT}); {len(missing)} missing e.g. "
                f"{missing[:3]}, {len(other)} unexpected e.g. {other[:3]}, {len(wrong)} of another shape "
                f"e.g. {wrong[:2]}")
        return checkpoint_filter_fn(state, net)

    def _load(self) -> None:
        from eoembed.weights import load_state_dict

        path, sha = self.weights_file(self.card.weights[0].name)
        state = load_state_dict(path, sha)
        net = self.build()
        net.load_state_dict(self.encoder_state(state, net, f"{path} ({self.card.id})"), strict=True)
        self.net = net.to(self.device).eval()

    def network_input(self, batch) -> np.ndarray:
        """``(B, 12, 224, 224)``: the one frame's declared bands, in TerraMind's pre-training order."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = np.ascontiguousarray(self.network_input(batch))
        b, _, h, w = x.shape
        with torch.inference_mode():
            out = self.net(to_device(x, self.device))[-1]  # (B, N, D) after the final norm
        f = out.reshape(b, h // PATCH, w // PATCH, -1).permute(0, 3, 1, 2).float().cpu().numpy()
        return TokenGrid(f, np.ones((b, h // PATCH, w // PATCH), np.float32))
