"""OlmoEarth v1 (Allen AI, 2025): a multi-modal space-time ViT (latent MIM), via olmoearth-pretrain-minimal.

Architecture: ``olmoearth_pretrain_minimal`` 0.1.5 (``nn.flexi_vit.Encoder``): each Sentinel-2 L2A
frame is cut into 8 x 8 px patches, separately for the three v1 band groups (``B02 B03 B04 B08`` /
``B05 B06 B07 B8A B11 B12`` / ``B01 B09``, ``Modality.SENTINEL2_L2A``), so one token per patch,
frame and band group; a quarter of each token gets a learned band-group embedding, a sin-cos
frame-index embedding, the (frozen sin-cos) embedding of the frame's month and a 2-D sin-cos
position scaled by the ground resolution (10 m); plain transformer blocks, final LayerNorm.
eoembed builds the encoder with the library's own ``EncoderConfig`` from its v1 size table
(``MODEL_SIZE_CONFIGS``, ``DEFAULT_MODALITIES``: what ``OlmoEarthPretrain_v1(size, "v1")`` builds,
"matching the official OlmoEarth v1 models"). Weights: ``allenai/OlmoEarth-v1-<Size>``,
``weights.pth`` = the whole ``LatentMIM`` state dict (``encoder.*``, ``target_encoder.*``,
``decoder.*``), next to the ``config.json`` the library's ``load_model_from_path`` builds from.
eoembed loads ``encoder.*`` after checking the file's keys and shapes.

Declared input: Sentinel-2 L2A, the 12 bands in the library's order (``B02 B03 B04 B08 B05 B06
B07 B8A B11 B12 B01 B09``), 10 m, 1-12 frames, each band scaled as the library's ``Normalizer``
(std_multiplier 2) does: ``(x - (mean - 2 std)) / (4 std)`` with the ``sentinel2_l2a`` statistics of
``olmoearth_pretrain_v1/data/norm_configs/computed.json``. Timestamps per frame: ``[day, month - 1,
year]`` of the frame's middle day (as rslearn's OlmoEarth wrapper builds them from time ranges);
v1 uses only the month. Gaps: 0 after normalisation; a token whose 8 x 8 px patch has no valid
pixel in a frame is marked ``MaskValue.MISSING`` (the encoder leaves it out of attention).

Tokens: per patch, the mean over frames and band groups of the valid tokens (rslearn's
``token_pooling``, the library's ``pool_unmasked_tokens(spatial_pooling=True)`` when nothing is
missing) -> a ``(D, 16, 16)`` grid for 128 px; the token weight is the share of valid tokens, so
pooled = the mean over every valid token (the library's ``pool_instance_wise`` mean).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import WeightsError
from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy, mean_std
from eoembed.models.transfer import to_device

#: Modality.SENTINEL2_L2A.band_order of olmoearth_pretrain_minimal 0.1.5 (three v1 band groups)
BANDS = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09")
#: olmoearth_pretrain_v1/data/norm_configs/computed.json, "sentinel2_l2a": (mean, std) per band
STATS = {
    "B01": (1115.8494388252218, 1955.6991794280914), "B02": (1188.9412572078477, 1859.1923971769581),
    "B03": (1407.7739105458452, 1727.7387413631088), "B04": (1513.0573882432757, 1740.7757298757895),
    "B05": (1890.9893042634167, 1754.7320388511766), "B06": (2483.7812315422448, 1622.1172720635755),
    "B07": (2722.728248756412, 1621.8226170190276), "B08": (2755.481305028308, 1612.2565699990187),
    "B09": (3269.812554170875, 2651.088425085525), "B11": (2562.852607796968, 1441.5471830655151),
    "B12": (1914.1383249044113, 1328.8914382756407), "B8A": (2885.570263047681, 1611.3587521042082),
}
STD_MULTIPLIER = 2.0  # Normalizer(std_multiplier=2.0), the library's default and README example
PATCH = 8  # max_patch_size of v1 and the patch size of the library's example
SIZE = 128  # rslearn: "an input size between 1 (single pixel) and 128"
MAX_FRAMES = 12  # max_sequence_length of v1
GSD = 10  # BASE_GSD: input_res handed to the encoder
HF = "https://huggingface.co/allenai"
#: variant -> (dims, HF repo)
VARIANTS = {"nano": (128, "OlmoEarth-v1-Nano"), "tiny": (192, "OlmoEarth-v1-Tiny"),
            "base": (768, "OlmoEarth-v1-Base"), "large": (1024, "OlmoEarth-v1-Large")}
LICENCE = "OlmoEarth Artifact License (allenai; see LICENSE.txt of the Hugging Face repo)"
LAYOUT = ("the whole LatentMIM state dict as published in weights.pth: encoder.* (+ target_encoder.*, "
          "decoder.*), no other prefix")
#: prefixes of the published file that are not the encoder eoembed runs (training-only heads as
#: the library's _load_state_dict drops them)
OTHER = ("target_encoder.", "decoder.", "reconstructor.", "supervision_head.",
         "location_token_distillation_head.")
#: legacy key the library's CompositeEncodings drops on load (older checkpoints carry it)
LEGACY = ("composite_encodings.pos_embed",)

S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a",), bands=BANDS,
    norm=tuple(mean_std(*STATS[b], k=STD_MULTIPLIER) for b in BANDS), gsd_m=10.0,
    time=TimePolicy(1, MAX_FRAMES, tokens="month", default="months"),
    space=SpacePolicy("fixed", size=SIZE, token_px=PATCH, default_prep="tile"), missing="mask",
    metadata=("time",),
    norm_source="olmoearth-pretrain-minimal 0.1.5 Normalizer(std_multiplier=2.0): (x - (mean - 2 std)) / "
                "(4 std), mean/std of olmoearth_pretrain_v1/data/norm_configs/computed.json "
                "['sentinel2_l2a'] (S2 L2A DN = reflectance x 10000)")


def _card(variant: str) -> ModelCard:
    dims, repo = VARIANTS[variant]
    return ModelCard(
        id=f"olmoearth_{variant}", family="olmoearth", kind="on_the_fly", variant=variant,
        description=f"OlmoEarth v1 {variant.capitalize()}: Sentinel-2 L2A space-time ViT (latent MIM), "
                    "1-12 frames + months, via olmoearth-pretrain-minimal",
        inputs=(S2_INPUT,), dims=dims, outputs=("pooled", "grid"),
        weights=(WeightsFile(name="weights.pth", url=f"{HF}/{repo}/resolve/main/weights.pth", sha256="",
                             licence=LICENCE),),
        verified="library", licence=LICENCE,
        citation="Herzog, H., Bastani, F., Zhang, Y., et al. (2025). OlmoEarth: Stable Latent Image Modeling "
                 "for Multimodal Earth Observation. arXiv:2511.13655",
        url=f"{HF}/{repo}",
        mem_mb={"nano": 2000, "tiny": 2000, "base": 6000}.get(variant, 10000), runtime_min=60,
        notes="S2 L2A only (the encoder also takes S1 and Landsat, not offered). 128 px at 10 m by tiling, "
              "patch 8 (16 x 16 tokens); the library's example and rslearn take any patch size 1-8. "
              "Frames: 1-12, timestamps [day, month-1, year] of each frame's middle day (v1 reads the month "
              "only). Gaps: 0 after normalisation, tokens of all-gap patches masked MISSING. "
              "Tokens: mean over "
              "frames and band groups per patch. The architecture comes from the library's v1 size table, "
              "not from the published config.json (settings without weights, e.g. the attention kernel, are "
              "assumed equal). Hugging Face publishes no sha256 for weights.pth: pin it in "
              "models.<id>.weights_sha256.")


def encoder_config(variant: str, **overrides: Any):
    """The library's ``EncoderConfig`` of a v1 size, as ``OlmoEarthPretrain_v1(size, "v1")`` sets it."""
    from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.nn.flexi_vit import EncoderConfig
    from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.olmoearth_pretrain_v1 import (
        DEFAULT_MODALITIES,
        MODEL_SIZE_CONFIGS,
    )

    size = MODEL_SIZE_CONFIGS[f"{variant}_shallow_decoder"]
    kwargs = dict(embedding_size=int(size["encoder_embedding_size"]),
                  num_heads=int(size["encoder_num_heads"]),
                  depth=int(size["encoder_depth"]), mlp_ratio=size["mlp_ratio"],
                  supported_modality_names=list(DEFAULT_MODALITIES), max_patch_size=PATCH, drop_path=0.1,
                  max_sequence_length=MAX_FRAMES)
    kwargs.update(overrides)
    return EncoderConfig(**kwargs)


def timestamps(batch) -> np.ndarray:
    """``(B, T, 3)`` int64 ``[day, month - 1, year]`` of each frame's middle day: the month from
    ``batch.months``, day and year from ``years`` + 0-based ``doy`` (day 1, year 0 without years:
    v1 reads only the month)."""
    out = np.zeros((*batch.months.shape, 3), np.int64)
    out[..., 0], out[..., 1] = 1, batch.months
    if batch.years is not None:
        for idx in np.ndindex(batch.doy.shape):
            d = dt.date(int(batch.years[idx]), 1, 1) + dt.timedelta(days=int(batch.doy[idx]))
            out[idx] = (d.day, batch.months[idx], d.year)
    return out


def token_missing(mask: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """``(B, T, H, W)`` missing pixels -> ``(B, T, h, w)`` True where a patch has no valid pixel."""
    b, t, h, w = mask.shape
    return mask.reshape(b, t, h // patch, patch, w // patch, patch).all(axis=(3, 5))


def pool_tokens(tokens: Any, missing: Any) -> tuple[Any, Any]:
    """``(B, h, w, T, S, D)`` tokens, ``(B, h, w, T, S)`` missing -> ``(B, D, h, w)`` mean of the valid
    tokens of each patch (over frames and band groups) and ``(B, h, w)`` share of valid tokens."""
    valid = (~missing).to(tokens.dtype)
    count = valid.sum(dim=(3, 4))
    mean = (tokens * valid[..., None]).sum(dim=(3, 4)) / count.clamp(min=1)[..., None]
    return mean.permute(0, 3, 1, 2), count / (missing.shape[3] * missing.shape[4])


class OlmoEarth(Embedder):
    """OlmoEarth v1 encoder (olmoearth-pretrain-minimal); variants nano, tiny, base, large."""

    cards: ClassVar[dict[str, ModelCard]] = {v: _card(v) for v in VARIANTS}
    card: ClassVar[ModelCard] = cards["base"]
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8}

    def build(self):
        """The library's v1 encoder of this size (untrained, no download), restricted to the
        modalities the published encoders were trained on (as ``load_model_from_*`` does)."""
        from olmoearth_pretrain_minimal.model_loader import ENCODER_INPUT_MODALITY_NAMES, ModelID

        net = encoder_config(self.card.variant).build()
        net.restrict_input_modalities(ENCODER_INPUT_MODALITY_NAMES[ModelID(VARIANTS[self.card.variant][1])])
        return net

    def encoder_state(self, state: dict[str, Any], net: Any, where: str) -> dict[str, Any]:
        """The published ``weights.pth`` -> the encoder's state dict, checked: every encoder tensor
        present under ``encoder.`` with its shape, nothing else but the other LatentMIM parts."""
        want = net.state_dict()
        enc = {k[len("encoder."):]: v for k, v in state.items()
               if k.startswith("encoder.") and k[len("encoder."):] not in LEGACY}
        other = sorted(k for k in state if not k.startswith(("encoder.",) + OTHER))
        missing = sorted(k for k in want if k not in enc)
        extra = sorted(f"encoder.{k}" for k in enc if k not in want)
        wrong = [f"encoder.{k}: {tuple(enc[k].shape)} != {tuple(v.shape)}" for k, v in want.items()
                 if k in enc and tuple(enc[k].shape) != tuple(v.shape)]
        if missing or other or extra or wrong:
            raise WeightsError(
                f"weights file {where}: not the published key layout ({LAYOUT}); {len(missing)} missing e.g. "
                f"{['encoder.' + k for k in missing[:3]]}, {len(other) + len(extra)} unexpected e.g. "
                f"{(other + extra)[:3]}, {len(wrong)} of another shape e.g. {wrong[:2]}")
        return enc

    def _load(self) -> None:
        from eoembed.weights import load_state_dict

        path, sha = self.weights_file(self.card.weights[0].name)
        state = load_state_dict(path, sha)
        net = self.build()
        net.load_state_dict(self.encoder_state(state, net, f"{path} ({self.card.id})"), strict=True)
        self.net = net.to(self.device).eval()

    def sample(self, batch):
        """The library's ``MaskedOlmoEarthSample``: S2 ``(B, H, W, T, 12)``, its mask ``(B, H, W, T, 3)``
        (MISSING on every pixel of an all-gap patch) and the timestamps."""
        from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.constants import Modality
        from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.datatypes import (
            MaskedOlmoEarthSample,
            MaskValue,
        )

        x = np.ascontiguousarray(batch.x["s2"].transpose(0, 3, 4, 1, 2))  # (B, T, C, H, W) -> (B, H, W, T, C)
        gone = token_missing(batch.mask["s2"]).repeat(PATCH, axis=2).repeat(PATCH, axis=3)  # (B, T, H, W)
        groups = Modality.SENTINEL2_L2A.num_band_sets
        mask = np.where(gone.transpose(0, 2, 3, 1)[..., None], MaskValue.MISSING.value,
                        MaskValue.ONLINE_ENCODER.value).repeat(groups, axis=-1)
        dev = self.device
        return MaskedOlmoEarthSample(timestamps=to_device(timestamps(batch), dev),
                                     sentinel2_l2a=to_device(x, dev),
                                     sentinel2_l2a_mask=to_device(mask, dev))

    def forward(self, batch):
        import torch
        from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.datatypes import MaskValue

        from eoembed.prep import TokenGrid

        sample = self.sample(batch)
        gone = sample.sentinel2_l2a_mask == MaskValue.MISSING.value
        # the library refuses a sample without any token: such pieces (all gaps) get weight 0
        keep = ~gone.flatten(1).all(dim=1)
        b, h, w = batch.size, batch.x["s2"].shape[3] // PATCH, batch.x["s2"].shape[4] // PATCH
        feats = np.zeros((b, self.card.dims, h, w), np.float32)
        weight = np.zeros((b, h, w), np.float32)
        if keep.any():
            part = sample._replace(**{k: getattr(sample, k)[keep] for k in
                                      ("timestamps", "sentinel2_l2a", "sentinel2_l2a_mask")})
            with torch.inference_mode():
                out = self.net(part, patch_size=PATCH, input_res=GSD, fast_pass=not bool(gone.any()))
                out = out["tokens_and_masks"]
                f, wt = pool_tokens(out.sentinel2_l2a, out.sentinel2_l2a_mask == MaskValue.MISSING.value)
            idx = keep.cpu().numpy()
            feats[idx], weight[idx] = f.float().cpu().numpy(), wt.float().cpu().numpy()
        return TokenGrid(feats, weight)
