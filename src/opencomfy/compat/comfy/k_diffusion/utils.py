"""ComfyUI's ``comfy.k_diffusion.utils``: the small tensor helpers packs import from it and
``FolderOfImages`` (a dataset of the images in a folder)."""

from __future__ import annotations

from pathlib import Path

import torch


def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """``x`` with singleton dimensions appended up to ``target_dims`` (for broadcasting)."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * missing]


def append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def n_params(module: torch.nn.Module) -> int:
    """How many parameters ``module`` has."""
    return sum(p.numel() for p in module.parameters())


class FolderOfImages(torch.utils.data.Dataset):
    """Every image file under ``root`` (recursively, sorted), opened as RGB and passed through
    ``transform`` (default: unchanged PIL image); items are 1-tuples as in k-diffusion."""

    IMG_EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}

    def __init__(self, root, transform=None):
        super().__init__()
        self.root = Path(root)
        self.transform = transform if transform is not None else (lambda image: image)
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in self.IMG_EXTENSIONS)

    def __repr__(self) -> str:
        return f'FolderOfImages(root="{self.root}", len: {len(self)})'

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        from PIL import Image

        with Image.open(self.paths[key]) as image:
            return (self.transform(image.convert("RGB")),)
