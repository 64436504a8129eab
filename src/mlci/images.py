"""Images as a model takes them: one decoder shared by training, evaluation and serving.

An image model declares its input as one tensor, `(-1, H, W, C)` `uint8` (an MLflow
`TensorSpec`), and does its own scaling: the same bytes become the same array whether they
come from a folder in training or a request at the gateway.

The resize policy, stated once: an image is converted to the declared channels (1:
grayscale "L", 3: RGB; alpha is composited over white, EXIF orientation applied) and then
resized to exactly H x W with bilinear filtering, without keeping the aspect ratio and
without cropping (what Keras' `image_dataset_from_directory` does by default).

Pixel limits are checked on the header, before any pixel is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

FORMATS = ("PNG", "JPEG", "WEBP")
MAX_PIXELS = 1 << 24   # per image when the caller gives no budget (16.7 megapixels)


class ImageError(ValueError):
    """The bytes are not an image this module decodes (one line, no traceback)."""


class TooLarge(ImageError):
    """The image holds more pixels than allowed (read from its header, nothing decoded)."""


@dataclass(frozen=True)
class ImageSpec:
    """The tensor one image becomes: height x width x channels, uint8 (0..255)."""

    height: int
    width: int
    channels: int = 3

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if not (0 < self.height <= 8192 and 0 < self.width <= 8192):
            raise ValueError(f"image size must be 1..8192 pixels a side, got "
                             f"{self.height}x{self.width}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def mode(self) -> str:
        return "L" if self.channels == 1 else "RGB"


def spec_of_shape(shape: Any) -> ImageSpec | None:
    """The spec of a tensor shape `(-1, H, W, C)` or `(-1, H, W)` (one grayscale channel);
    None for any other shape (the model takes no images)."""
    dims = tuple(int(d) for d in shape)
    if len(dims) == 3:
        dims = (*dims, 1)
    if len(dims) != 4 or dims[3] not in (1, 3) or min(dims[1:3]) < 1:
        return None
    try:
        return ImageSpec(dims[1], dims[2], dims[3])
    except ValueError:
        return None


def open_checked(raw: bytes, max_pixels: int = MAX_PIXELS) -> Any:
    """A Pillow image opened from its header only, refused before decoding when it is not
    PNG/JPEG/WebP or holds more than `max_pixels` pixels."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(raw), formats=list(FORMATS))
    except Image.DecompressionBombError:  # Pillow's own cap, also read from the header
        raise TooLarge(f"over the {max_pixels} pixels allowed") from None
    except (UnidentifiedImageError, ValueError, OSError):
        raise ImageError("not a PNG, JPEG or WebP image") from None
    w, h = img.size
    if w * h > max_pixels:
        raise TooLarge(f"{w}x{h} is over the {max_pixels} pixels allowed")
    return img


def pixels(img: Any) -> int:
    return int(img.size[0] * img.size[1])


def to_array(img: Any, spec: ImageSpec) -> np.ndarray:
    """An opened image as the spec's (H, W, C) uint8 array (the stated resize policy)."""
    import numpy as np
    from PIL import Image, ImageOps

    try:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, rgba)
        img = img.convert(spec.mode)
        if img.size != (spec.width, spec.height):
            img = img.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    except (ValueError, OSError, SyntaxError, Image.DecompressionBombError):
        raise ImageError("the image data is damaged") from None
    return arr.reshape(spec.shape)


def decode(raw: bytes, spec: ImageSpec, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """PNG, JPEG or WebP bytes as the spec's (H, W, C) uint8 array."""
    return to_array(open_checked(raw, max_pixels), spec)


def read(path: Any, spec: ImageSpec, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file as the spec's (H, W, C) uint8 array."""
    from pathlib import Path

    return decode(Path(path).read_bytes(), spec, max_pixels)
