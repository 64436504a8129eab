"""The one image decoder (mlci.images): formats, channels, the resize policy, limits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlci import images


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_each_format_decodes_to_the_declared_tensor(fmt: str) -> None:
    red = Image.new("RGB", (40, 20), (255, 0, 0))
    arr = images.decode(_bytes(red, fmt, **({"quality": 95} if fmt != "PNG" else {})),
                        images.ImageSpec(8, 16, 3))
    assert arr.shape == (8, 16, 3) and arr.dtype == np.uint8
    assert arr[..., 0].min() > 240 and arr[..., 1].max() < 15  # still red after resizing


def test_grayscale_and_alpha_over_white() -> None:
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    arr = images.decode(_bytes(clear, "PNG"), images.ImageSpec(4, 4, 1))
    assert arr.shape == (4, 4, 1) and int(arr.min()) == 255


def test_pixel_limit_is_read_from_the_header() -> None:
    big = _bytes(Image.new("L", (300, 300)), "PNG")
    with pytest.raises(images.TooLarge, match="300x300"):
        images.decode(big, images.ImageSpec(8, 8, 1), max_pixels=10_000)


@pytest.mark.parametrize("raw", [b"", b"GIF89a....", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_not_an_image_is_one_error(raw: bytes) -> None:
    with pytest.raises(images.ImageError):
        images.decode(raw, images.ImageSpec(8, 8, 1))


def test_spec_of_shape() -> None:
    assert images.spec_of_shape((-1, 32, 24, 3)) == images.ImageSpec(32, 24, 3)
    assert images.spec_of_shape((-1, 8, 8)) == images.ImageSpec(8, 8, 1)
    assert images.spec_of_shape((-1, 64)) is None
    assert images.spec_of_shape((-1, 8, 8, 4)) is None
