"""Non-digits: what a reader must answer "not a digit" to, prepared as ``--predict`` prepares any image.

Five kinds, each drawn from sources kept apart by use (docs/predict.md, "Not a digit"):

- ``letters``: the letters of the handwriting fonts (``assets/font_letters.safetensors``, the same families as
  ``font_digits`` and the same split into training and development fonts). The letters people write exactly as
  a digit (``LIKE_DIGITS``: O, o, I, l) are left out: no reader can tell them from 0 and 1.
- ``scribbles``: one to three smooth random pen strokes, what a doodle or a crossed-out mark becomes.
- ``shapes``: filled blobs, polygons, outlines and textures of several grey levels, what a photo of an object
  becomes once its background is taken away.
- ``strokes``: straight pen strokes, alone or joined at corners, sometimes crossed: ticks, crosses, zigzags.
- ``photos``: square crops of the two photographs scikit-learn ships (a requirement): ``china.jpg`` for
  training, ``flower.jpg`` for development.

Beside them, ``objects``: photographs of objects in MNIST's format (Fashion-MNIST's clothes, shoes and bags,
``assets/fashion_objects.safetensors``, ``tools.build_objects``), training and development images kept apart:
``benchmarks.objects`` measures the gate on the development half, and only ``training.detector --objects`` trains
against the other (measured, not adopted); the readers' recipes draw from ``pool`` alone.

Beside them too, ``drawn(PEN_LETTERS, ...)``: letters drawn as a pen draws them, along the strokes of the Hershey vector fonts
(the ``Hershey-Fonts`` package), each drawn with its own slant, width, turn, wobble and pen: a hand none of the
Google Fonts families the letters above come from writes in. Only ``training.detector --pen-letters`` trains
against them.

Training (outlier exposure, ``data_utils``) and development (the threshold ``--calibrate`` chooses) draw from
different fonts and different random streams (``TRAINING_SEED``, ``DEVELOPMENT_SEED``). The test set of
non-digits is made from other sources again (``analysis.rejection``) and is never trained or chosen on.
"""
from __future__ import annotations

import functools
import json
import math
import random
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from core.artifacts import REPO_ROOT, package_dir
from digits import font_digits
from digits.prepare import digits_of, mnistify

LETTERS_PATH = REPO_ROOT / "assets" / "font_letters.safetensors"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # the order of the file's letters
LIKE_DIGITS = "OoIl"  # written as 0 and 1 are: not a non-digit anyone could reject
LETTERS = "".join(c for c in ALPHABET if c not in LIKE_DIGITS)  # the letters ``letters`` gives of each font, in order
KINDS = ("letters", "scribbles", "shapes", "strokes", "photos")
OBJECTS_PATH = REPO_ROOT / "assets" / "fashion_objects.safetensors"
OBJECT_CLASSES = ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
TRAINING_SEED, DEVELOPMENT_SEED = 0, 1
CANVAS = 96  # scribbles, shapes and strokes are drawn at this size, then prepared
# The Hershey fonts whose strokes ``pen_letters`` follows: the script, cursive, sans and roman hands (not the
# gothic, Greek, Cyrillic or symbol ones).
PEN_FONTS = ("cursive", "scripts", "scriptc", "futural", "futuram", "rowmans", "rowmand", "timesi", "timesr")
PEN_LETTERS = "pen-letters"  # their drawn kind (``drawn``), apart from ``KINDS``: no reader's recipe draws it


class NonDigitsError(font_digits.FontDigitsError):
    """A source of the non-digits (the font letters' file, the photographs) cannot be read; the message names it.
    A kind of the fonts' error, which every command already answers with one line."""


@functools.lru_cache(maxsize=1)
def _read_letters(path: Path) -> tuple[Tensor, list[str]]:
    if not path.is_file():
        raise NonDigitsError(f"{path}: no font letters file (it is part of the repository: restore it"
                             " with git)")
    try:
        images = load_file(path)["images"]
        with safe_open(path, "pt") as f:
            families = [font["family"] for font in json.loads((f.metadata() or {})["fonts"])]
    except Exception as e:  # a damaged file: say which, without a traceback
        raise NonDigitsError(f"{path}: not a font letters file ({e})") from None
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (len(ALPHABET), 28, 28) or len(images) != len(families):
        raise NonDigitsError(f"{path}: expected uint8 (fonts, {len(ALPHABET)}, 28, 28) for"
                             f" {len(families)} fonts, found {images.dtype} {tuple(images.shape)}")
    return images, families


def letters(split: str, path: Path | None = None, alphabet: str | None = None) -> Tensor:
    """The ``"train"`` or ``"development"`` fonts' letters as (N, 28, 28) uint8: every letter but ``LIKE_DIGITS``
    (or those of ``alphabet``), font by font. The split follows ``font_digits``' by family name."""
    if split not in ("train", "development"):
        raise ValueError(f"split is train or development, not {split!r}")
    images, families = _read_letters(Path(path or LETTERS_PATH))
    development = set(font_digits.load("development").families)
    keep = [i for i, family in enumerate(families) if (family in development) == (split == "development")]
    columns = [ALPHABET.index(c) for c in (alphabet or LETTERS)]
    return images[keep][:, columns].reshape(-1, 28, 28)


def render(font: "ImageFont.FreeTypeFont", text: str) -> Image.Image:
    """``text`` in ``font``, dark ink on white, with a margin of a quarter of the font's size around it."""
    left, top, right, bottom = font.getbbox(text)
    margin = font.size // 4
    image = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=font, fill=0)
    return image


MISSING_GLYPH = "\ue000"  # a private-use code point: fonts draw their "missing glyph" box for it


def gray(image: Image.Image) -> Tensor:
    """A PIL image as a float (H, W) grey tensor in [0, 1]."""
    image = image.convert("L")
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(image.height, image.width).float() / 255


def glyph(font: "ImageFont.FreeTypeFont", text: str, missing: Tensor) -> Tensor | None:
    """``text`` in ``font`` (``render``) as a grey tensor, or None where the font lacks it: drawn as nothing, or as
    ``missing``, the font's own drawing of ``MISSING_GLYPH``."""
    drawn = gray(render(font, text))
    return None if drawn.min() > 0.5 or (drawn.shape == missing.shape and torch.equal(drawn, missing)) else drawn


def _points(rng: random.Random, count: int, margin: float = 12) -> list[tuple[float, float]]:
    return [(rng.uniform(margin, CANVAS - margin), rng.uniform(margin, CANVAS - margin)) for _ in range(count)]


def _smooth(points: list[tuple[float, float]], steps: int = 12) -> list[tuple[float, float]]:
    """A Catmull-Rom curve through ``points``: a pen's path, not a polygon."""
    if len(points) < 3:
        return points
    padded = [points[0], *points, points[-1]]
    curve = []
    for p0, p1, p2, p3 in zip(padded, padded[1:], padded[2:], padded[3:]):
        for s in range(steps):
            t = s / steps
            curve.append(tuple(0.5 * (2 * b + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t * t
                                      + (-a + 3 * b - 3 * c + d) * t ** 3) for a, b, c, d in zip(p0, p1, p2, p3)))
    curve.append(points[-1])
    return curve


def draw_scribble(rng: random.Random) -> Image.Image:
    """One to three smooth strokes of random length and pen width, dark on white."""
    image = Image.new("L", (CANVAS, CANVAS), 255)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.choice((1, 1, 2, 3))):
        width = rng.randint(3, 9)
        draw.line(_smooth(_points(rng, rng.randint(4, 9))), fill=0, width=width, joint="curve")
    return image


def noise_image(side: int, sigma: float, rng: random.Random) -> Image.Image:
    """A ``side`` x ``side`` grey image of Gaussian noise around mid-grey, drawn from ``rng``'s stream. PIL's
    ``Image.effect_noise`` would draw from C's global ``rand()``, which no seed reaches: its images would depend
    on whatever ran before in the process."""
    gen = torch.Generator().manual_seed(rng.getrandbits(63))
    values = (128 + sigma * torch.randn(side, side, generator=gen)).round().clamp(0, 255).to(torch.uint8)
    return Image.frombytes("L", (side, side), values.numpy().tobytes())


def draw_shapes(rng: random.Random) -> Image.Image:
    """One to four filled or outlined ellipses, rectangles and polygons of several grey levels, sometimes on a
    textured ground: an object in a photo, light on dark or dark on light."""
    ground = rng.randint(0, 60)
    image = Image.new("L", (CANVAS, CANVAS), ground)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 4)):
        box = sorted(rng.uniform(4, CANVAS - 4) for _ in range(2)), sorted(rng.uniform(4, CANVAS - 4) for _ in range(2))
        (x0, x1), (y0, y1) = box
        x1, y1 = max(x1, x0 + 8), max(y1, y0 + 8)
        shade = rng.randint(110, 255)
        kind = rng.choice(("ellipse", "rectangle", "polygon"))
        outline = rng.random() < 0.3
        style = {"outline": shade, "width": rng.randint(2, 6)} if outline else {"fill": shade}
        if kind == "ellipse":
            draw.ellipse((x0, y0, x1, y1), **style)
        elif kind == "rectangle":
            draw.rectangle((x0, y0, x1, y1), **style)
        else:
            centre, radius = ((x0 + x1) / 2, (y0 + y1) / 2), max(x1 - x0, y1 - y0) / 2
            angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(rng.randint(3, 8)))
            draw.polygon([(centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a)) for a in angles],
                         **style)
    if rng.random() < 0.4:  # a texture: the object's surface or the photo's grain
        noise = noise_image(CANVAS, rng.uniform(20, 60), rng).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2)))
        image = Image.blend(image, noise, rng.uniform(0.15, 0.4))
    if rng.random() < 0.5:
        image = Image.eval(image, lambda v: 255 - v)
    return image


def draw_strokes(rng: random.Random) -> Image.Image:
    """One to three straight-stroke marks, dark on white: a polyline of 4-9 corners (a zigzag, a star's outline)
    or a cross of two lines, a pen of 2-10 pixels. Never one line or one bend alone: those are a 1 and a 7."""
    image = Image.new("L", (CANVAS, CANVAS), 255)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.choice((1, 1, 2, 3))):
        width = rng.randint(2, 10)
        if rng.random() < 0.2:  # a cross
            for _ in range(2):
                draw.line(_points(rng, 2, margin=6), fill=0, width=width)
        else:
            draw.line(_points(rng, rng.randint(4, 9), margin=6), fill=0, width=width, joint="curve")
    return image


def draw_silhouette(rng: random.Random) -> Image.Image:
    """A garment's solid silhouette, light on dark as Fashion-MNIST stores its photographs (sometimes dark on
    light): a block at least half as wide as it is tall, narrowing or widening downwards, sometimes with sleeves,
    a neckline cut out, legs parted, seams or a print in darker ink, a grain, soft edges. Drawn, not photographed:
    what the gate let through most among clothes (docs/detector.md) was such blocks, which no other kind draws."""
    ground, shade = rng.randint(0, 40), rng.randint(110, 255)
    image = Image.new("L", (CANVAS, CANVAS), ground)
    draw = ImageDraw.Draw(image)
    height = rng.uniform(45, 84)
    top, bottom = (rng.uniform(0.5, 0.9) * height for _ in range(2))
    y0, cx = (CANVAS - height) / 2, CANVAS / 2 + rng.uniform(-4, 4)
    y1 = y0 + height
    draw.polygon([(cx - top / 2, y0), (cx + top / 2, y0), (cx + bottom / 2, y1), (cx - bottom / 2, y1)], fill=shade)
    if rng.random() < 0.6:  # sleeves from the shoulders, short and out or long and down
        length, width = rng.uniform(12, 0.8 * height), rng.uniform(8, 18)
        angle = math.radians(rng.uniform(15, 75))  # from the vertical
        for side in (-1, 1):
            x, y = cx + side * top / 2, y0 + 2
            dx, dy = side * math.sin(angle), math.cos(angle)
            nx, ny = dy * side, -dx * side  # across the sleeve
            draw.polygon([(x, y), (x + length * dx, y + length * dy),
                          (x + length * dx - width * nx, y + length * dy - width * ny), (x - width * nx, y - width * ny)],
                         fill=shade)
    if rng.random() < 0.5:  # a neckline
        neck, depth = rng.uniform(0.2, 0.45) * top, rng.uniform(3, 12)
        draw.ellipse((cx - neck / 2, y0 - depth, cx + neck / 2, y0 + depth), fill=ground)
    if rng.random() < 0.2:  # legs parted
        gap = rng.uniform(2, 6)
        draw.polygon([(cx, y0 + rng.uniform(0.3, 0.6) * height), (cx + gap, y1 + 1), (cx - gap, y1 + 1)], fill=ground)
    for _ in range(rng.choice((0, 0, 1, 2, 3))):  # seams, stripes or a print, darker than the cloth
        x0, x1 = sorted(rng.uniform(cx - top / 2, cx + top / 2) for _ in range(2))
        ya, yb = sorted(rng.uniform(y0, y1) for _ in range(2))
        draw.rectangle((x0, ya, x1, min(yb, ya + rng.uniform(2, 15))), fill=rng.randint(ground, shade))
    if rng.random() < 0.5:  # the cloth's grain
        noise = noise_image(CANVAS, rng.uniform(20, 60), rng).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2)))
        image = Image.blend(image, noise, rng.uniform(0.1, 0.3))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return Image.eval(image, lambda v: 255 - v) if rng.random() < 0.3 else image


PHOTOS = {TRAINING_SEED: "china.jpg", DEVELOPMENT_SEED: "flower.jpg"}  # scikit-learn's sample images, by stream


@functools.lru_cache(maxsize=2)
def photograph(name: str) -> Image.Image:
    """One of the photographs scikit-learn ships (found without importing scikit-learn), in grey."""
    sklearn = package_dir("sklearn")
    if sklearn is None:
        raise NonDigitsError("photographs: scikit-learn, which ships them, is not installed (pip install"
                             " -r requirements.txt)")
    path = sklearn / "datasets" / "images" / name
    try:
        return Image.open(path).convert("L")
    except OSError as exc:
        raise NonDigitsError(f"{path}: cannot be read ({exc})") from None


def draw_photo(rng: random.Random, name: str) -> Image.Image:
    """A square crop of the photograph ``name``, 24-240 pixels across, sometimes shrunk to 28x28 first (a photo
    already in MNIST's format), sometimes inverted."""
    photo = photograph(name)
    side = rng.randint(24, min(240, *photo.size))
    x, y = rng.randint(0, photo.width - side), rng.randint(0, photo.height - side)
    crop = photo.crop((x, y, x + side, y + side))
    if rng.random() < 0.5:
        crop = crop.resize((28, 28), Image.BILINEAR)
    return Image.eval(crop, lambda v: 255 - v) if rng.random() < 0.3 else crop


@functools.lru_cache(maxsize=1)
def pen_skeletons() -> tuple[list[list[tuple[float, float]]], ...]:
    """Every letter but ``LIKE_DIGITS`` in each of ``PEN_FONTS``, as the pen strokes (point lists, y down) that
    draw it, font by font, in ``ALPHABET``'s order."""
    from HersheyFonts import HersheyFonts  # noqa: PLC0415 - only the detector's training draws pen letters

    skeletons = []
    for name in PEN_FONTS:
        font = HersheyFonts()
        font.load_default_font(name)
        for letter in (c for c in ALPHABET if c not in LIKE_DIGITS):
            strokes = [stroke for stroke in font.strokes_for_text(letter) if len(stroke) >= 2]
            if strokes:
                skeletons.append(strokes)
    return tuple(skeletons)


def pen_drawing(rng: random.Random, strokes: list[list[tuple[float, float]]]) -> Image.Image:
    """A glyph's ``strokes`` drawn on a white canvas as one hand would write it: scaled to 50-70 pixels, slanted,
    widened or narrowed, turned a little, wobbled along smooth waves, with a pen 4-10 pixels wide."""
    xs, ys = [x for stroke in strokes for x, _ in stroke], [y for stroke in strokes for _, y in stroke]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    scale = rng.uniform(50, 70) / max(max(xs) - min(xs), max(ys) - min(ys), 1)
    shear, wide = rng.uniform(-0.35, 0.35), rng.uniform(0.75, 1.25)
    turn = math.radians(rng.uniform(-10, 10))
    wobble, phases = rng.uniform(0, 2.0), [rng.uniform(0, 6.3) for _ in range(4)]

    def place(x: float, y: float) -> tuple[float, float]:
        x, y = (x - cx) * scale * wide, (y - cy) * scale
        x -= shear * y
        x, y = math.cos(turn) * x - math.sin(turn) * y, math.sin(turn) * x + math.cos(turn) * y
        x += wobble * (math.sin(y / 9 + phases[0]) + math.sin(x / 13 + phases[1]))
        y += wobble * (math.sin(x / 11 + phases[2]) + math.sin(y / 7 + phases[3]))
        return CANVAS / 2 + x, CANVAS / 2 + y

    image = Image.new("L", (CANVAS, CANVAS), 255)
    draw, width = ImageDraw.Draw(image), rng.randint(4, 10)
    for stroke in strokes:
        draw.line([place(x, y) for x, y in stroke], fill=0, width=width, joint="curve")
    return image


def draw_pen_letter(rng: random.Random) -> Image.Image:
    """One of the Hershey fonts' letters (``pen_skeletons``), picked at random, drawn as a hand would
    (``pen_drawing``): the drawn kind ``PEN_LETTERS``, which only ``training.detector --pen-letters`` draws."""
    return pen_drawing(rng, rng.choice(pen_skeletons()))


SILHOUETTES = "silhouettes"  # drawn garments (``draw_silhouette``), apart from ``KINDS``: only ``training.detector
# --silhouettes`` trains against them
DRAWERS = {"scribbles": draw_scribble, "shapes": draw_shapes, "strokes": draw_strokes, PEN_LETTERS: draw_pen_letter,
           SILHOUETTES: draw_silhouette}


def prepared(image: Image.Image) -> Tensor | None:
    """``image`` as ``--predict`` prepares it, (28, 28) in [0, 1]; None when the preparation finds no ink."""
    gray = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(image.height, image.width).float() / 255
    try:
        return mnistify(gray)
    except ValueError:
        return None


def like_a_one(digit: Tensor) -> bool:
    """Whether prepared ink (28, 28) stands in a box less than half as wide as it is tall: a bar, a narrow blob or
    a pen's line, which MNIST's form makes a 1 whatever it was drawn as. No drawn non-digit is one."""
    ink = digit > 0.1
    rows, columns = ink.any(1).nonzero(), ink.any(0).nonzero()
    return bool(len(rows)) and int(columns[-1] - columns[0] + 1) < 0.5 * int(rows[-1] - rows[0] + 1)


@functools.lru_cache(maxsize=16)
def drawn(kind: str, count: int, seed: int) -> Tensor:
    """``count`` prepared non-digits of a drawn ``kind`` (all but ``letters``) from the random stream ``seed``
    (photos: ``PHOTOS[seed]``), (count, 28, 28) uint8; the same for the same arguments in any process."""
    rng, out = random.Random(f"{kind}-{seed}"), []
    draw = functools.partial(draw_photo, name=PHOTOS[seed]) if kind == "photos" else DRAWERS[kind]
    while len(out) < count:
        digit = prepared(draw(rng))
        if digit is not None and not like_a_one(digit):
            out.append(digit.mul(255).round().to(torch.uint8))
    return torch.stack(out)


def pool(split: str, drawn_each: int) -> Tensor:
    """Every non-digit of a split as (N, 28, 28) uint8: its fonts' letters, then ``drawn_each`` of every drawn
    kind from its random stream."""
    seed = TRAINING_SEED if split == "train" else DEVELOPMENT_SEED
    return torch.cat([letters(split), *(drawn(kind, drawn_each, seed) for kind in KINDS[1:])])


def stored_images(path: Path, key: str, what: str) -> Tensor:
    """The tensor ``key`` of an images file built by ``tools.build_objects``; a missing or damaged file is one
    ``NonDigitsError`` naming it (``what`` the file holds)."""
    if not path.is_file():
        raise NonDigitsError(f"{path}: no {what} file (python -m tools.build_objects rebuilds it)")
    try:
        return load_file(str(path))[key]
    except Exception as e:  # damaged: say which, without a traceback
        raise NonDigitsError(f"{path}: not the {what} file ({type(e).__name__}: {e})") from None


def objects(split: str, path: Path | None = None) -> Tensor:
    """The ``"train"`` or ``"development"`` photographs of objects in MNIST's format as they are stored, (N, 28, 28)
    uint8, light objects on black, class after class (``OBJECT_CLASSES``, as many of each)."""
    if split not in ("train", "development"):
        raise ValueError(f"split is train or development, not {split!r}")
    path = Path(path or OBJECTS_PATH)
    images = stored_images(path, split, "objects")
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (28, 28) or len(images) % len(OBJECT_CLASSES):
        raise NonDigitsError(f"{path}: expected uint8 (N, 28, 28) {split} images of {len(OBJECT_CLASSES)} classes,"
                             f" found {images.dtype} {tuple(images.shape)}")
    return images


@functools.lru_cache(maxsize=2)
def prepared_objects(split: str) -> Tensor:
    """Every piece ``--predict`` cuts the ``split``'s objects into, prepared, (N, 28, 28) uint8: what the digit
    detector sees of them (an object whose ink stands apart in columns is judged piece by piece)."""
    pieces = []
    for image in objects(split):
        try:
            pieces += [piece for piece, _ in digits_of(image.float() / 255)]
        except ValueError:  # no ink to prepare
            continue
    return torch.stack(pieces).mul(255).round().to(torch.uint8)
