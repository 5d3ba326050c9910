"""The network: torchvision's FCN or a segmentation-models-pytorch UNet/PSPNet/DeepLabV3, built without downloads,
and its start weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import torch

from smcv.errors import ConfigError
from smcv.inputs import channel_inputs
from smcv.pretrained import WeightsNeed, imagenet_need, load_matching, read_state_dict
from smcv.segmentation.fcn import FCN_STRIDE, FCNLogits, build_fcn

log = logging.getLogger(__name__)

UNET_DECODER_CHANNELS = (256, 128, 64, 32, 16)
#: ImageNet statistics the encoders were pretrained with (RGB, 0-1 scale)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _smp() -> Any:
    try:
        import segmentation_models_pytorch as smp  # heavy optional dependency (smcv[segmentation])
    except ImportError as exc:  # pragma: no cover - depends on the image
        raise ConfigError("the segmentation task needs segmentation-models-pytorch; install smcv[segmentation]") from exc
    return smp


def check_encoder(name: str) -> None:
    """Raise ConfigError unless smp knows the encoder name."""
    names = _smp().encoders.get_encoder_names()
    if name not in names and not name.startswith("tu-"):
        close = [n for n in names if name.replace("-", "").lower() in n.replace("-", "").lower()][:8]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"encoder_name {name!r} is not a segmentation-models-pytorch encoder{hint}; use e.g. "
                          f"resnet34, resnet50, efficientnet-b0, or 'tu-<timm model>'")


def effective_depth(arch: str, depth: int) -> int:
    """Encoder depth actually used: encoder_depth for UNet; PSPNet uses 3 and DeepLabV3 5, as smp builds them."""
    return {"pspnet": 3, "deeplabv3": 5}.get(arch, depth)


def size_divisor(arch: str, depth: int) -> int:
    """What the input height and width must be a multiple of."""
    if arch == "fcn":
        return FCN_STRIDE
    return 32 if arch == "deeplabv3" else 2 ** effective_depth(arch, depth)


def network_spec(arch: str, encoder: str, depth: int, num_classes: int, aux: bool = False) -> dict[str, Any]:
    """Everything needed to rebuild the network, as stored in the manifest (FCN: no depth; aux head or not)."""
    if arch == "fcn":
        return {"architecture": arch, "encoder_name": encoder, "num_classes": num_classes, "aux_classifier": aux}
    depth = effective_depth(arch, depth)
    spec: dict[str, Any] = {"architecture": arch, "encoder_name": encoder, "encoder_depth": depth,
                            "num_classes": num_classes}
    if arch == "unet":
        spec["decoder_channels"] = list(UNET_DECODER_CHANNELS[-depth:])
    return spec


def build_network(spec: dict[str, Any]) -> torch.nn.Module:
    """The network for a spec, with random weights (nothing is downloaded)."""
    arch, encoder, classes = spec["architecture"], spec["encoder_name"], int(spec["num_classes"])
    if arch == "fcn":
        return build_fcn(encoder, classes, bool(spec.get("aux_classifier")))
    smp = _smp()
    check_encoder(encoder)
    if arch == "unet":
        return smp.Unet(encoder_name=encoder, encoder_depth=int(spec["encoder_depth"]), encoder_weights=None,
                        decoder_channels=tuple(spec["decoder_channels"]), classes=classes)
    if arch == "pspnet":
        return smp.PSPNet(encoder_name=encoder, encoder_weights=None, classes=classes)
    if arch == "deeplabv3":
        return smp.DeepLabV3(encoder_name=encoder, encoder_weights=None, classes=classes)
    raise ConfigError(f"unknown segmentation architecture {arch!r} in the manifest; retrain with this smcv version")


def weights_need(arch: str, encoder: str) -> WeightsNeed:
    """The encoder's ImageNet weights: FCN's backbone and smp's ResNet encoders are torchvision ResNets (same files
    and tensor names)."""
    if arch == "fcn":
        return imagenet_need(f"the {encoder} backbone", (encoder,))
    check_encoder(encoder)
    names = dict.fromkeys([encoder, encoder.replace("-", "_"), encoder.replace("tu-", "")])
    return imagenet_need(f"the {encoder} encoder", names)


def load_initial_weights(model: torch.nn.Module, weights: Optional[Path], channels: dict[str, Path]) -> str:
    """Load the encoder's ImageNet weights file, if any; return where the start weights come from.

    With an smcv artifact in the `model` channel nothing is loaded here: smcv.train initialises the whole network
    from it (incremental training), so no ImageNet file is needed.
    """
    if channel_inputs(channels).model_artifact is not None:
        return "the model channel (incremental training)"
    if weights is None:
        return "random initialisation"
    load_matching(pretrained_part(model), read_state_dict(weights), strip_prefixes=("module.", "encoder.", "backbone."),
                  source=weights.name)
    return weights.name


def pretrained_part(model: torch.nn.Module) -> torch.nn.Module:
    """The part ImageNet weights go into: FCN's ResNet backbone or the smp encoder."""
    return model.backbone if isinstance(model, FCNLogits) else model.encoder


def split_outputs(outputs: Any) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(logits, auxiliary logits or None) from what the network returns (FCN in training mode: a pair)."""
    if isinstance(outputs, tuple):
        return outputs[0], outputs[1]
    return outputs, None


def convert_syncbn(model: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm layers as SyncBatchNorm (same parameter names, so the state_dict does not change)."""
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
