"""WildSAT (Daroya et al., 2025): a ViT-B/16 satellite image encoder aligned with wildlife
observations, text and location; the embedding is its image head (256-d).

Declared input: Sentinel-2 B04, B03, B02 in eoembed's true-colour scale (reflectance / 0.3), one
frame, 224 px. The repo's quickstart then applies a *per-image* min-max (``x - x.min()``, then
``/ max(x.max(), 1)`` over the whole image; a constant image becomes zeros), declared as
``per_image="minmax"`` and applied by the framework (over the valid pixels). Grid: the encoder's final-normed patch
tokens (768-d) are not in the image-head space, so WildSAT offers pooled output only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.nets import wildsat as net
from eoembed.models.zoo import RGB, RGB_SATURATION, ZooEmbedder

LICENCE = "not stated with the checkpoint (check github.com/cvl-umass/wildsat before commercial use)"
RGB_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=RGB,
    norm=tuple(BandNorm(0.0, RGB_SATURATION) for _ in RGB), gsd_m=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=224, default_prep="resize"), missing="fill_mean",
    per_image="minmax",
    norm_source="wildsat quickstart: ToTensor (8-bit -> [0, 1]; here reflectance / 0.3), Resize 224, then "
                "per-image min-max")
CARD = ModelCard(
    id="wildsat", family="zoo", kind="on_the_fly", variant="vitb16",
    description="WildSAT ViT-B/16 image embedding (256-d image head) of Sentinel-2 true colour",
    inputs=(RGB_INPUT,), dims=256, outputs=("pooled",),
    weights=(WeightsFile("vitb16-imagenet-bnfc.pth",
                         "https://drive.google.com/uc?id=1IxBpf3nbEMzny4YJWS6stMBxel6gMiYE", "", LICENCE),),
    verified="oracle", licence=LICENCE,
    citation="Daroya, R., Cole, E., Mac Aodha, O., Van Horn, G., Maji, S. (2025). WildSAT: Learning "
             "Satellite "
             "Image Representations from Wildlife Observations. ICCV 2025. arXiv:2412.14428",
    url="https://github.com/cvl-umass/wildsat", mem_mb=3000,
    notes="Manual steps: Google Drive (id 1IxBpf3nbEMzny4YJWS6stMBxel6gMiYE) needs a browser/gdown; no sha256 "
          "published; the checkpoint also pickles the training options (an argparse Namespace, ckpt['opt']), "
          "which weights_only loading refuses: extract ckpt['satellite_state_dict'] once (the error says how). "
          "Trained on Satlas Sentinel-2 8-bit RGB tiles (ckpt opt.root), so S2 is in-domain; the 8-bit scaling "
          "of those tiles vs eoembed's reflectance/0.3 is not verified. The image head sits on the "
          "1000-way ImageNet logits layer (kept, as upstream). Gaps are filled with the image mean "
          "(missing='fill_mean'), "
          "because the min-max runs over every pixel. ResNet-50 and Swin-T heads: ids wildsat_rn50, "
          "wildsat_swint.")

DRIVE = "https://drive.google.com/uc?id="
#: variant -> (Google Drive id of the README's 'ImageNet1k' row, architecture words)
CNN = {"rn50": ("1LwCjzT1p0yFOtv1m0YD-rl7tP0eYXTb2", "ResNet-50"),
       "swint": ("12rfb3ES9-RuIAk_RjzYrMQJG_5J1Iq5H", "Swin-T")}


def _cnn_card(variant: str) -> ModelCard:
    drive, words = CNN[variant]
    return ModelCard(
        id=f"wildsat_{variant}", family="zoo", kind="on_the_fly", variant=variant,
        description=f"WildSAT {words} image embedding (256-d image head) of Sentinel-2 true colour",
        inputs=(RGB_INPUT,), dims=256, outputs=("pooled",),
        weights=(WeightsFile(f"{variant}-imagenet-wildsat.pth", DRIVE + drive, "", LICENCE),),
        verified="library", licence=LICENCE, citation=CARD.citation, url=CARD.url, mem_mb=3000,
        notes=(f"torchvision {'resnet50' if variant == 'rn50' else 'swin_t'} with its 1000-way ImageNet layer kept "
               "and WildSAT's three bias-free linear heads on the logits, exactly as the original's get_model "
               "builds it; checked against torchvision's own network and the heads recomputed from the same "
               "weights (no oracle of the original code for this path). Checkpoint: the README's 'ImageNet1k' "
               f"row for {words} (Google Drive id {drive}; manual step, the local file name is eoembed's); "
               "read as ckpt['satellite_state_dict'] with DataParallel's 'module.' prefix, like the ViT-B/16 "
               "file (assumed: same train.py). Input and per-image min-max as wildsat. No sha256 published."))


class WildSAT(ZooEmbedder):
    """WildSAT image encoder + image head (pooled 256-d); variants vitb16, rn50, swint."""

    cards: ClassVar[dict[str, ModelCard]] = {"vitb16": CARD, **{v: _cnn_card(v) for v in CNN}}
    card: ClassVar[ModelCard] = CARD
    published: ClassVar[dict[str, dict[str, Any]]] = {"vitb16": net.PUBLISHED, **net.PUBLISHED_CNN}
    weights_member: ClassVar[str | None] = "satellite_state_dict"

    def inputs(self) -> tuple[InputSpec, ...]:
        from dataclasses import replace

        size = int(self.config["image_size"])  # one token (the image head) per image
        space = SpacePolicy("fixed", size=size, token_px=size, default_prep="resize")
        return (replace(RGB_INPUT, space=space),)

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        return net.load(self.config, state_dict, prefix=net.CHECKPOINT_PREFIX)

    def model_input(self, batch: Any) -> Any:
        return self.tensor(batch.x["s2"][:, 0])  # (B, 3, H, W), min-max applied by the framework

    def run(self, net_: Any, inp: Any, batch: Any) -> Any:
        return net_.forward_tokens(inp)["image"][:, :, None, None]  # one token per image
