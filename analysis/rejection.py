"""Saying "not a digit": the score, how its threshold is chosen, how well it separates, and the sets it is measured on.

The score of an input is the gate's (``analysis.gate``): the digit detector's probability that it is a digit at
all times the reader's calibrated maximum softmax probability (Hendrycks & Gimpel, 2017), the probability of the
digit it would answer. Without a detector, the reader's probability alone. An input scoring below the threshold
is answered "not a digit".

The threshold is chosen on development data only (``choose_threshold``): the score below which
``DEVELOPMENT_REJECTED`` of the development digits of other writers fall (``development_digits``: OPTDIGITS'
training writers and the development fonts, the digits calibration is fitted on, and MFEAT's odd rows, digits
stretched to fill their frame). MNIST's test set, SEMEION and the test non-digits (``test_non_digits``) are only
measured.

The test non-digits come from sources no recipe trains or chooses on: letters of the typefaces matplotlib ships
(DejaVu, STIX, Computer Modern), letters of 16 handwriting fonts Debian packages (none a Google Fonts family, where
the training and development fonts come from; measured where they are installed), crops of the photographs and
scans in matplotlib's sample data, silhouettes of animals in MNIST's format (Animal-MNIST: nothing trains on
these; the objects of development and of the detector's ``--objects`` experiment are Fashion-MNIST's), zigzag
scribbles (straight strokes from a generator and a random stream of their own; training draws straight strokes
too, never these), noise, and blank pages.
"""
from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import Tensor

from analysis import calibration
from core.artifacts import REPO_ROOT
from digits import mfeat, nondigits

DEVELOPMENT_REJECTED = 0.01  # the share of development digits the default threshold rejects
TEST_SEED = 2  # the test non-digits' random stream: neither training's nor development's


def scores(probabilities: Tensor, digit_probability: Tensor | None = None) -> Tensor:
    """The digit score of each of N inputs: the reader's (calibrated) top probability of its (N, 10), times the
    detector's (N,) digit probability where a detector stands in front."""
    top = probabilities.max(1).values
    return top if digit_probability is None else top * digit_probability


def choose_threshold(digit_scores: Tensor, rejected: float = DEVELOPMENT_REJECTED) -> float:
    """The score below which ``rejected`` of these (development) digits fall."""
    return float(torch.quantile(digit_scores.double(), rejected))


def rejected(score: Tensor, threshold: float) -> float:
    """The share (%) of inputs scoring below ``threshold``."""
    return 100.0 * float((score < threshold).float().mean()) if len(score) else 0.0


def auroc(digit_scores: Tensor, other_scores: Tensor) -> float:
    """The probability that a digit scores above a non-digit (ties count half): the area under the ROC curve of
    the score as a digit detector, independent of any threshold."""
    both = torch.cat([digit_scores, other_scores]).double()
    ranks = torch.empty_like(both)
    order = both.argsort()
    ranks[order] = torch.arange(1, len(both) + 1, dtype=torch.double)
    for value in both[order].unique_consecutive()[(both[order].unique_consecutive(return_counts=True)[1] > 1)]:
        tied = both == value
        ranks[tied] = ranks[tied].mean()  # average ranks of ties
    n, m = len(digit_scores), len(other_scores)
    return float((ranks[:n].sum() - n * (n + 1) / 2) / (n * m))


# --------------------------------------------------------------------------- the test non-digits


def _mpl_data() -> Path:
    import matplotlib  # noqa: PLC0415 - only the test set reads its files

    return Path(matplotlib.get_data_path())


TYPEFACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
             "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf", "STIXGeneral.ttf", "STIXGeneralItalic.ttf",
             "STIXGeneralBol.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf")




def typeface_letters() -> list[Tensor]:
    """Every letter but ``nondigits.LIKE_DIGITS`` in each of matplotlib's typefaces, dark on white."""
    out = []
    for name in TYPEFACES:
        font = ImageFont.truetype(str(_mpl_data() / "fonts" / "ttf" / name), 96)
        for c in nondigits.ALPHABET:
            if c not in nondigits.LIKE_DIGITS:
                out.append(nondigits.gray(nondigits.render(font, c)))
    return out


def _photographs() -> list[Image.Image]:
    """matplotlib's sample photographs and scans as grey images."""
    sample = _mpl_data() / "sample_data"
    images = [Image.open(sample / "grace_hopper.jpg"), Image.open(sample / "Minduka_Present_Blue_Pack.png")]
    mri = np.frombuffer(gzip.decompress((sample / "s1045.ima.gz").read_bytes()), np.uint16).reshape(256, 256)
    for field in (mri.astype(np.float64), np.load(sample / "jacksboro_fault_dem.npz")["elevation"].astype(np.float64),
                  np.load(sample / "topobathy.npz")["topo"].astype(np.float64)):
        span = field.max() - field.min()
        images.append(Image.fromarray(((field - field.min()) / (span or 1) * 255).astype(np.uint8)))
    return [image.convert("L") for image in images]


def photo_crops(count: int, seed: int = TEST_SEED) -> list[Tensor]:
    """Square crops of the sample photographs, 32-240 pixels across, as 28x28 images (MNIST's format)."""
    rng, photos, out = random.Random(f"photos-{seed}"), _photographs(), []
    while len(out) < count:
        photo = rng.choice(photos)
        side = rng.randint(32, min(240, *photo.size))
        x, y = rng.randint(0, photo.width - side), rng.randint(0, photo.height - side)
        out.append(nondigits.gray(photo.crop((x, y, x + side, y + side)).resize((28, 28), Image.BILINEAR)))
    return out


def zigzags(count: int, seed: int = TEST_SEED) -> list[Tensor]:
    """Scribbles of straight strokes: random polylines of 5-12 corners, sometimes two, a pen of 3-8 pixels."""
    rng, out = random.Random(f"zigzags-{seed}"), []
    while len(out) < count:
        image = Image.new("L", (96, 96), 255)
        draw = ImageDraw.Draw(image)
        for _ in range(rng.choice((1, 1, 2))):
            corners = [(rng.uniform(8, 88), rng.uniform(8, 88)) for _ in range(rng.randint(5, 12))]
            draw.line(corners, fill=0, width=rng.randint(3, 8), joint="curve")
        out.append(nondigits.gray(image))
    return out


def noise(count: int, seed: int = TEST_SEED) -> list[Tensor]:
    """Noise images: uniform, Gaussian, blurred or salt-and-pepper, 28-200 pixels across."""
    rng, out = random.Random(f"noise-{seed}"), []
    while len(out) < count:
        side = rng.randint(28, 200)
        image = nondigits.noise_image(side, rng.uniform(10, 120), rng)
        kind = rng.choice(("gaussian", "uniform", "blurred", "salt"))
        if kind == "uniform":
            image = Image.frombytes("L", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side)))
        elif kind == "blurred":
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))
        elif kind == "salt":
            image = Image.new("L", (side, side), 255 * rng.randint(0, 1))
            draw = ImageDraw.Draw(image)
            for _ in range(side * side // rng.randint(10, 40)):
                draw.point((rng.randrange(side), rng.randrange(side)), fill=rng.choice((0, 255)))
        out.append(nondigits.gray(image))
    return out


def blank_pages(count: int, seed: int = TEST_SEED) -> list[Tensor]:
    """Empty pages: one grey level with faint noise, 28-300 pixels across."""
    rng, out = random.Random(f"blank-{seed}"), []
    while len(out) < count:
        side = rng.randint(28, 300)
        level = rng.uniform(0, 1)
        out.append((torch.full((side, side), level) + torch.randn(side, side, generator=torch.Generator().manual_seed(
            rng.getrandbits(31))) * 0.01).clamp(0, 1))
    return out


# Handwriting fonts Debian packages, none of them a Google Fonts family (the training and development fonts are
# those): the "letters in other handwriting fonts". The same hand's bold and italic count as fonts of it.
HANDWRITING_FONTS = {
    "fonts-bwht": [f"opentype/bwht/BecauseWe{name}-Regular.otf"
                   for name in ("Build", "Connect", "Create", "Learn", "Mentor", "Organize")],
    "fonts-breip": ["truetype/breip/Breip.ttf"],
    "fonts-dkg-handwriting": [f"truetype/fifthhorseman/dkg{style}.ttf" for style in ("", "Bd", "It", "BI")],
    "fonts-ecolier-court": ["truetype/ecolier-court/Ecolier-court.ttf"],
    "fonts-femkeklaver": ["truetype/femkeklaver/femkeklaver.ttf"],
    "fonts-havana": ["opentype/havana/Havana-Regular.otf"],
    "fonts-humor-sans": ["truetype/humor-sans/Humor-Sans.ttf"],
    "fonts-joscelyn": ["opentype/joscelyn/Joscelyn-Regular.otf"],
}
# Other handwriting fonts Debian packages, none a Google Fonts family nor a test font's hand: a development set of
# other hands' letters, measured (``benchmarks.other_hands``), never trained or chosen on.
DEVELOPMENT_HANDWRITING_FONTS = {
    "fonts-sjfonts": ["truetype/sjfonts/Delphine.ttf", "truetype/sjfonts/SteveHand.ttf"],
    "fonts-rufscript": ["truetype/rufscript/Rufscript010.ttf"],
    "fonts-tomsontalks": ["truetype/tomsontalks/TomsonTalks.ttf"],
    "fonts-seto": ["truetype/seto/setofont.ttf"],
    "fonts-dustin": ["truetype/dustin/Domestic_Manners.ttf", "truetype/dustin/It_wasn_t_me.ttf"],
}
FONT_DIR = Path("/usr/share/fonts")
HANDWRITING = "letters (handwriting fonts)"


def missing_handwriting_fonts(font_dir: Path = FONT_DIR, fonts: dict[str, list[str]] = HANDWRITING_FONTS) -> list[str]:
    """The Debian packages of ``fonts`` (the test handwriting fonts, or the development ones) whose files are not
    under ``font_dir``."""
    return [package for package, files in fonts.items() if not all((font_dir / name).is_file() for name in files)]


def handwriting_letters(font_dir: Path = FONT_DIR, fonts: dict[str, list[str]] = HANDWRITING_FONTS) -> list[Tensor]:
    """Every letter but ``nondigits.LIKE_DIGITS`` in each handwriting font of ``fonts``, dark on white; a letter a
    font lacks (``nondigits.glyph``) is left out. Call only when none is missing."""
    return [letter for _, letter in named_handwriting_letters(font_dir, fonts)]


def named_handwriting_letters(font_dir: Path = FONT_DIR,
                              fonts: dict[str, list[str]] = HANDWRITING_FONTS) -> list[tuple[str, Tensor]]:
    """``handwriting_letters``, each with the letter it is."""
    out = []
    for files in fonts.values():
        for name in files:
            font = ImageFont.truetype(str(font_dir / name), 96)
            missing = nondigits.gray(nondigits.render(font, nondigits.MISSING_GLYPH))
            drawn = [(c, nondigits.glyph(font, c, missing)) for c in nondigits.ALPHABET if c not in nondigits.LIKE_DIGITS]
            out += [(c, letter) for c, letter in drawn if letter is not None]
    return out


ANIMALS_PATH = REPO_ROOT / "assets" / "animal_silhouettes.safetensors"
ANIMAL_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
ANIMALS = "animal silhouettes"


def animal_silhouettes(path: Path | None = None) -> list[Tensor]:
    """Animal-MNIST's silhouettes (``tools.build_objects``), light on black in MNIST's format, as (28, 28) in
    [0, 1]: objects in MNIST's format from a source nothing is trained or chosen on."""
    return list(nondigits.stored_images(Path(path or ANIMALS_PATH), "test", "animal silhouettes").float() / 255)


def _evenly(images: list[Tensor], count: int) -> list[Tensor]:
    """``count`` of ``images`` (class after class, as many of each) taken at even steps: every class alike."""
    return images[:: max(1, len(images) // count)][:count]


def test_non_digits(per_kind: int = 500, font_dir: Path = FONT_DIR) -> dict[str, list[Tensor]]:
    """The test non-digits as grey images (H, W) in [0, 1], before any preparation, per kind. The letters of the
    handwriting fonts are among them only where their Debian packages are installed (``missing_handwriting_fonts``
    names the others)."""
    kinds = {"letters (typefaces)": typeface_letters()}
    if not missing_handwriting_fonts(font_dir):
        kinds[HANDWRITING] = handwriting_letters(font_dir)
    return {**kinds, "photo crops": photo_crops(per_kind), ANIMALS: _evenly(animal_silhouettes(), per_kind),
            "zigzag scribbles": zigzags(per_kind),
            "noise": noise(per_kind // 2), "blank pages": blank_pages(per_kind // 10)}


def without_handwriting_fonts(font_dir: Path = FONT_DIR) -> str | None:
    """One line saying the handwriting fonts' letters are left out of the test non-digits, and how to add them;
    None where they are installed."""
    missing = missing_handwriting_fonts(font_dir)
    return None if not missing else (f"the letters of handwriting fonts are not measured: apt-get install"
                                     f" {' '.join(missing)} (Debian) to add them")


# --------------------------------------------------------------------------- the choice, in --calibrate

DEVELOPMENT_DRAWN = 1000  # development scribbles and as many shapes, beside the development fonts' letters
STRETCHED = "MFEAT odd rows, stretched to their frame (development)"


def stretched_digits(root: Path | str, rows: slice) -> tuple[Tensor, Tensor]:
    """MFEAT's digits (the rows picked by ``rows``) as ``--predict`` prepares them, (N, 28, 28) in [0, 1], and their
    labels; a missing or damaged file is a ``CalibrationDataError`` naming it."""
    try:
        digits, labels = mfeat.load(root)
    except mfeat.MfeatError as exc:
        raise calibration.CalibrationDataError(str(exc)) from None
    return digits[rows], labels[rows]


def development_digits(root: Path | str) -> dict[str, tuple[Tensor, Tensor]]:
    """The development digits thresholds are chosen on, (N, 28, 28) in [0, 1] with labels: those temperatures
    are fitted on (``calibration.development_digits``) and MFEAT's odd rows, digits stretched to fill their frame
    as some scanned sets store them (the even rows train the detector)."""
    return {**calibration.development_digits(str(root)), STRETCHED: stretched_digits(root, slice(1, None, 2))}


def development_non_digits() -> dict[str, Tensor]:
    """The development non-digits ``--calibrate`` measures, per kind (letters of the development fonts, scribbles
    and shapes of the development stream), (N, 28, 28) in [0, 1] as ``--predict`` prepares any image."""
    kinds = {"letters": nondigits.letters("development"),
             "scribbles": nondigits.drawn("scribbles", DEVELOPMENT_DRAWN, nondigits.DEVELOPMENT_SEED),
             "shapes": nondigits.drawn("shapes", DEVELOPMENT_DRAWN, nondigits.DEVELOPMENT_SEED)}
    return {f"development {kind}": images.float() / 255.0 for kind, images in kinds.items()}


def choose(temperature: float, digit_logits: dict[str, Tensor], non_digit_logits: dict[str, Tensor],
           chosen_on: list[str], digit_probability: dict[str, Tensor] | None = None,
           rejected_share: float = DEVELOPMENT_REJECTED) -> dict:
    """The threshold chosen on the development digits (the ``digit_logits`` sets named in ``chosen_on``) and the
    share rejected of every set at it: what ``--calibrate`` adds to its record. ``digit_probability``: the
    detector's, per set (None: no detector in front)."""
    detected = digit_probability or {}
    score = {name: scores((z / temperature).softmax(1), detected.get(name))
             for name, z in {**digit_logits, **non_digit_logits}.items()}
    development = torch.cat([score[name] for name in chosen_on])
    threshold = choose_threshold(development, rejected_share)
    others = torch.cat([s for name, s in score.items() if name in non_digit_logits])
    what = "calibrated top probability" + (" x the digit detector's digit probability" if detected else "")
    return {"reject_below": round(threshold, 6), "rejection": {
        "score": what, "chosen_on": f"{100 * rejected_share:g}% of the development digits", "chosen_on_sets": chosen_on,
        "rejected_percent": {name: round(rejected(s, threshold), 3) for name, s in score.items()},
        "development_auroc": round(auroc(development, others), 5),
        "note": "the threshold is chosen on development digits; MNIST's test set and SEMEION are only measured"}}


# --------------------------------------------------------------------------- ensembles


def save_development(path: Path, digit_logits: Tensor, non_digit_logits: Tensor,
                     digit_probability: Tensor | None = None) -> None:
    """The calibrated probabilities of the development digits and non-digits, (N, 10) float16 each, and the
    detector's (N,) digit probability of those digits, beside the calibration record: an ensemble's threshold is
    chosen from its members' files (``ensemble_threshold``)."""
    from safetensors.torch import save_file  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {"digits": digit_logits.softmax(1).half().contiguous(),
               "non_digits": non_digit_logits.softmax(1).half().contiguous()}
    if digit_probability is not None:
        tensors["detector"] = digit_probability.float().contiguous()
    save_file(tensors, str(tmp))
    tmp.replace(path)


class MissingDevelopment(Exception):
    """A member of an ensemble has no development file: it was never calibrated (the message names it)."""


def ensemble_development(paths: list[Path]) -> tuple[Tensor, Tensor, Tensor | None]:
    """The ensemble's probabilities (the mean of its members') for the development digits and non-digits, and the
    detector's digit probability of those digits (None where the members were calibrated without one)."""
    from safetensors.torch import load_file  # noqa: PLC0415

    digits, others, detected = [], [], []
    for path in paths:
        try:
            tensors = load_file(str(path))
            digits.append(tensors["digits"].float())
            others.append(tensors["non_digits"].float())
            detected.append(tensors.get("detector"))
        except FileNotFoundError:
            raise MissingDevelopment(f"{path}: missing; run --calibrate for this model first") from None
        except Exception as exc:  # a damaged file: say which, without a traceback
            raise MissingDevelopment(f"{path}: not a development file ({type(exc).__name__}); run --calibrate"
                                     " again") from None
    if len({d.shape for d in digits}) != 1 or len({o.shape for o in others}) != 1:
        raise MissingDevelopment("the members were calibrated on different development data; run --calibrate again"
                                 " for each")
    first = detected[0]
    if any((d is None) != (first is None) or (d is not None and not torch.equal(d, first)) for d in detected):
        raise MissingDevelopment("the members were calibrated with different digit detectors; run --calibrate again"
                                 " for each")
    return torch.stack(digits).mean(0), torch.stack(others).mean(0), first


def ensemble_threshold(paths: list[Path], rejected_share: float = DEVELOPMENT_REJECTED) -> float:
    """The ensemble's threshold, chosen as a single model's is: the score below which ``rejected_share`` of the
    development digits fall, the score being the top of the members' mean probabilities (times the detector's)."""
    digits, _, detected = ensemble_development(paths)
    return choose_threshold(scores(digits, detected), rejected_share)
