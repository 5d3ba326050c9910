"""Where training augmentation runs (the augmentation_device hyperparameter of every task)."""

from __future__ import annotations

#: auto (the training device when CUDA is present), cpu (DataLoader workers, per sample), gpu (the training device)
AUGMENTATION_DEVICES = ("auto", "cpu", "gpu")


def on_device(setting: str) -> bool:
    """Whether augmentation_device=`setting` augments on the training device (auto: when a GPU is present)."""
    import torch  # kept here so the schemas can import the values without torch

    if setting not in AUGMENTATION_DEVICES:
        raise ValueError(f"augmentation_device must be one of {AUGMENTATION_DEVICES}, got {setting!r}")
    return setting == "gpu" or (setting == "auto" and torch.cuda.is_available())
