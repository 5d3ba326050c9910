"""Tiny synthetic stand-ins for the data sets of examples/recipes, in the same folder layout as shared/data."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image

from tests.helpers.classdata import write_class_folders
from tests.helpers.detdata import draw, scene
from tests.helpers.segdata import pair

BCCD_CLASSES = ("RBC", "WBC", "Platelets")


def pneumoniamnist(root: Path, per_class: int = 12) -> Path:
    """{train,val}/{normal,pneumonia}/*.png, 28x28 grey."""
    write_class_folders(root / "train", per_class, ("normal", "pneumonia"), size=28)
    write_class_folders(root / "val", per_class // 3, ("normal", "pneumonia"), size=28)
    return root


def nih_cxr64(root: Path, per_class: int = 12) -> Path:
    """{train,valid}/{0_normal,1_abnormal}/*.png, 64x64 RGB (grey content, as the real thumbnails)."""
    write_class_folders(root / "train", per_class, ("0_normal", "1_abnormal"), size=64, mode="RGB")
    write_class_folders(root / "valid", per_class // 3, ("0_normal", "1_abnormal"), size=64, mode="RGB")
    return root


def bccd(root: Path, count: int = 20, size: int = 96) -> Path:
    """trainval/{JPEGImages,Annotations}: Pascal VOC with the three BCCD class names (20 images: the hash split puts
    one, BloodImage_00016, in validation)."""
    folder = root / "trainval"
    (folder / "Annotations").mkdir(parents=True, exist_ok=True)
    (folder / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        objects = scene(i, size, classes=len(BCCD_CLASSES)) or [(0, 5, 5, size // 3, size // 3)]
        draw(objects, size, seed=i).save(folder / "JPEGImages" / f"BloodImage_{i:05d}.jpg", quality=95)
        boxes = "".join(f"<object><name>{BCCD_CLASSES[c]}</name><difficult>0</difficult><bndbox><xmin>{l + 1}</xmin>"
                        f"<ymin>{t + 1}</ymin><xmax>{l + w}</xmax><ymax>{t + h}</ymax></bndbox></object>"
                        for c, l, t, w, h in objects)
        (folder / "Annotations" / f"BloodImage_{i:05d}.xml").write_text(
            f"<annotation><filename>BloodImage_{i:05d}.jpg</filename><size><width>{size}</width>"
            f"<height>{size}</height><depth>3</depth></size>{boxes}</annotation>")
    return root


def _image_mask_pairs(root: Path, sizes: list[tuple[int, int]], grey: bool) -> Path:
    """{images,masks}/<i>.png with masks 0/255 (255 = the bright rectangle)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(sizes):
        image, mask = pair(i, size)
        Image.fromarray(image[..., 0] if grey else image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


def dsb2018(root: Path, count: int = 15) -> Path:
    """{images,masks}/*.png RGB images of mixed sizes, masks 0/255."""
    shapes = [(40, 48), (64, 40), (56, 56), (48, 80)]
    return _image_mask_pairs(root, [shapes[i % len(shapes)] for i in range(count)], grey=False)


def isbi2012(root: Path, count: int = 15) -> Path:
    """{images,masks}/*.png square grey images, masks 0/255."""
    return _image_mask_pairs(root, [(64, 64)] * count, grey=True)


MAKERS: dict[str, Callable[[Path], Path]] = {"pneumoniamnist": pneumoniamnist, "nih_cxr64": nih_cxr64, "bccd": bccd,
                                             "dsb2018": dsb2018, "isbi2012": isbi2012}

