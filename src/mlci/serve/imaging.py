"""Images at the gateway: encoded images or pixel tensors into the tensor a model declares.

A model takes images when its signature declares one `(-1, H, W, C)` uint8 tensor (see
`mlci.images`, the decoder training and evaluation use too): PNG, JPEG and WebP bytes are
decoded into exactly that (channels, size, the stated resize policy), their pixels counted
from the headers against the request's budget before anything is decoded, and the batch the
model gets is one (N, H, W, C) uint8 array. Pixel tensors (v2 `UINT8`, or `instances` of
nested pixel values) must already have that shape.

The prediction log keeps, per image, what identifies it (a digest, the format and size), not
its pixels: a 224x224 RGB image is 150,528 values.

Flat square-pixel models (an 8x8 image as 64 numbers, like the digits example) declare no
image tensor; they take images only when the operator says how to scale them
(`mlci serve --image-max`): grayscale, resized to the square, scaled to 0..image_max.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlci.images import ImageError, ImageSpec, TooLarge, open_checked, pixels, to_array
from mlci.serve.inputs import MAX_INSTANCES, BadInput, Mismatch, TooManyPixels

if TYPE_CHECKING:
    import numpy as np

NO_IMAGES = ("this model takes no images: its signature declares no (-1, H, W, C) uint8 "
             "tensor (a model of flat square pixels takes them with mlci serve --image-max)")


@dataclass
class ImageBatch:
    """A checked batch of images for one image spec: what the model gets and what is logged."""

    spec: ImageSpec
    array: np.ndarray                 # (N, H, W, C) uint8
    records: list[dict[str, Any]]     # one per image, for the prediction log
    raws: list[bytes] | None = None   # the encoded images, to decode for another spec

    def __len__(self) -> int:
        return len(self.records)


def _digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def decode_all(raws: list[bytes], spec: ImageSpec, budget: int) -> ImageBatch:
    """Encoded images as one batch for `spec`; `budget` pixels for the whole request, read
    from the headers before any image is decoded."""
    import numpy as np

    _count(len(raws))
    opened = []
    left = budget
    for i, raw in enumerate(raws):
        try:
            img = open_checked(raw, budget)
        except TooLarge as exc:
            raise TooManyPixels(f"image {i}: {exc} (per request)") from None
        except ImageError as exc:
            raise BadInput(f"image {i}: {exc}") from None
        left -= pixels(img)
        if left < 0:
            w, h = img.size
            raise TooManyPixels(f"image {i} ({w}x{h}) takes the request's images over the "
                                f"{budget} pixels allowed per request")
        opened.append(img)
    out = np.empty((len(raws), *spec.shape), dtype=np.uint8)
    records = []
    for i, (raw, img) in enumerate(zip(raws, opened, strict=True)):
        records.append({"image": _digest(raw), "format": img.format, "size": list(img.size)})
        try:
            out[i] = to_array(img, spec)
        except ImageError as exc:
            raise BadInput(f"image {i}: {exc}") from None
    return ImageBatch(spec, out, records, raws)


def from_pixels(arr: Any, spec: ImageSpec) -> ImageBatch:
    """A pixel tensor (N, H, W, C), or (N, H, W) for one channel, of integers 0..255."""
    import numpy as np

    a = np.asarray(arr)
    if a.ndim == 3 and spec.channels == 1:
        a = a[..., None]
    if a.ndim != 4 or a.shape[1:] != spec.shape:
        raise Mismatch(f"pixels of shape {list(a.shape)}; the model takes "
                       f"[n, {spec.height}, {spec.width}, {spec.channels}]")
    _count(a.shape[0])
    if a.dtype != np.uint8:
        if a.dtype.kind not in "iuf" or (a.size and (
                not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 255
                or not np.all(a == np.round(a)))):
            raise BadInput("pixel values must be integers 0..255")
        a = a.astype(np.uint8)
    records = [{"pixels": _digest(a[i].tobytes()), "shape": list(spec.shape)}
               for i in range(a.shape[0])]
    return ImageBatch(spec, np.ascontiguousarray(a), records)


def from_instances(items: Any, spec: ImageSpec) -> ImageBatch:
    """`/predict` instances of an image model: each one image as nested pixel values."""
    import numpy as np

    if not isinstance(items, list) or not items:
        raise BadInput("'instances' must be a non-empty list")
    _count(len(items))
    size = math.prod(spec.shape)
    try:
        a = np.asarray(items, dtype=float)
    except (ValueError, TypeError):
        raise BadInput("each instance must be an image as nested lists of pixel values "
                       f"[{spec.height}][{spec.width}][{spec.channels}]") from None
    if a.size == len(items) * size:
        a = a.reshape(len(items), *spec.shape)
    return from_pixels(a, spec)


def again(batch: ImageBatch, spec: ImageSpec, budget: int) -> ImageBatch:
    """The same images for another spec (a challenger of another size): decoded again from
    their bytes; pixel tensors of another shape do not fit."""
    if spec == batch.spec:
        return batch
    if batch.raws is None:
        raise Mismatch(f"pixels of shape {list(batch.spec.shape)}; the model takes "
                       f"{list(spec.shape)}")
    return decode_all(batch.raws, spec, budget)


def flat_rows(raws: list[bytes], width: int | None, image_max: float,
              budget: int) -> list[list[float]]:
    """Images as rows of a flat square-pixel model (the operator's --image-max): grayscale,
    resized to the square and scaled to 0..image_max."""
    side = math.isqrt(width or 0)
    if not width or side * side != width:
        raise Mismatch("this model does not take square images")
    batch = decode_all(raws, ImageSpec(side, side, 1), budget)
    scaled = batch.array.reshape(len(raws), width).astype(float) * (image_max / 255)
    return scaled.round(4).tolist()


def _count(n: int) -> None:
    if n > MAX_INSTANCES:
        raise BadInput(f"at most {MAX_INSTANCES} images per request, got {n}")
