"""Generate the shapes example's images: small RGB JPEGs of four shapes, one folder per class.

    python examples/shapes/make_data.py [DEST] [--per-class N] [--seed S]

writes DEST/<class>/<nnn>.jpg (default: examples/shapes/data/images, 100 per class, seed 0):
a circle, square, triangle or cross in a random bright colour, size and small offset on a
dark, noisy background, 32x32 pixels, JPEG quality 90. Deterministic: the same arguments give
the same files, byte for byte (Pillow's encoder at a fixed quality). `--seed` gives more
images of the same distribution (the "more data" version of the example).
"""

from __future__ import annotations

import argparse
from pathlib import Path

CLASSES = ("circle", "cross", "square", "triangle")
SIZE = 32


def draw(kind: str, rng) -> bytes:  # noqa: ANN001 - numpy Generator
    import io

    import numpy as np
    from PIL import Image, ImageDraw

    noise = rng.integers(0, 60, size=(SIZE, SIZE, 3), dtype=np.uint8)
    img = Image.fromarray(noise, "RGB")
    d = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in rng.integers(120, 256, size=3))
    r = int(rng.integers(8, 13))            # half the shape's side
    cx, cy = (SIZE // 2 + int(rng.integers(-3, 4)) for _ in range(2))
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        d.ellipse(box, fill=colour)
    elif kind == "square":
        d.rectangle(box, fill=colour)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        w = max(2, r // 3)
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main(dest: Path, per_class: int = 100, seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (dest / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (dest / kind / f"{seed:02d}-{i:03d}.jpg").write_bytes(draw(kind, rng))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", nargs="?", type=Path,
                    default=Path(__file__).resolve().parent / "data" / "images")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    main(a.dest, a.per_class, a.seed)
