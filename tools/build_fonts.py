"""Builds ``assets/font_digits.safetensors``: the digits of handwriting fonts, prepared as ``--predict`` prepares
a scan (``digits.font_digits`` reads the file; training needs neither the fonts nor npm, only rebuilding does).

Every Google Fonts "handwriting" family (the catalogue as the npm package ``google-fonts-complete`` 2.2.3
lists it) that Fontsource publishes with all ten digits: each digit of its regular (or nearest) latin
weight rendered dark on white and passed through ``digits.prepare.mnistify``.

    npm pack google-fonts-complete@2.2.3 && tar xzf google-fonts-complete-2.2.3.tgz
    python -m tools.build_fonts --ids package/google-fonts.json > ids.txt        # the handwriting families' ids
    mkdir fonts && cd fonts && while read id; do npm pack "@fontsource/$id" && mkdir "$id" &&
        tar xzf fontsource-"$id"-*.tgz -C "$id" --strip-components=1; done < ../ids.txt; cd ..
    python -m tools.build_fonts --make fonts

rebuilds the file (an id Fontsource does not publish fails its ``npm pack`` and is left out). The file keeps
each family's name, package version and licence; newer package versions may draw a glyph differently.
``python -m tools.build_fonts --letters fonts`` then writes the letters of the same families
(``assets/font_letters.safetensors``: the non-digits of ``digits.nondigits``).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from PIL import ImageFont
from safetensors.torch import save_file
from torch import Tensor

from digits import nondigits, prepare
from digits.font_digits import PATH, load, read

RENDER_SIZE = 96  # font size in pixels; the glyph is then prepared to MNIST's 20-pixel box


def render(font: ImageFont.FreeTypeFont, text: str) -> Tensor:
    """``text`` in ``font``, dark ink on white, as a float (H, W) image in [0, 1] with a margin around it."""
    return nondigits.gray(nondigits.render(font, text))


def font_file(package: Path, font_id: str, weights: list[int]) -> Path | None:
    """The package's latin, normal-style file of the weight nearest 400 (woff2 preferred)."""
    for weight in sorted(weights, key=lambda w: (abs(w - 400), w)):
        for suffix in ("woff2", "woff"):
            path = package / "files" / f"{font_id}-latin-{weight}-normal.{suffix}"
            if path.is_file():
                return path
    return None


def prepared_digits(path: Path) -> Tensor | None:
    """The ten digits of the font at ``path`` prepared by ``prepare.mnistify``, uint8 (10, 28, 28); None if the
    font lacks one of them (drawn as its missing-glyph box, or as nothing)."""

    font = ImageFont.truetype(str(path), RENDER_SIZE)
    missing = render(font, nondigits.MISSING_GLYPH)
    digits = []
    for d in "0123456789":
        drawn = nondigits.glyph(font, d, missing)
        if drawn is None:
            return None
        digits.append(prepare.mnistify(drawn))
    images = torch.stack(digits).mul(255).round().to(torch.uint8)
    flat = images.view(10, -1).float()
    if (torch.cdist(flat, flat) + torch.eye(10) * 1e9).min() < 1.0:  # two digits drawn alike: a placeholder glyph
        return None
    return images


def prepared_letters(path: Path) -> Tensor | None:
    """The font's letters (``nondigits.ALPHABET``) prepared by ``prepare.mnistify``, uint8 (52, 28, 28); None if
    it lacks one of them."""
    font = ImageFont.truetype(str(path), RENDER_SIZE)
    missing = render(font, nondigits.MISSING_GLYPH)
    letters = []
    for c in nondigits.ALPHABET:
        drawn = nondigits.glyph(font, c, missing)
        if drawn is None:
            return None
        letters.append(prepare.mnistify(drawn))
    return torch.stack(letters).mul(255).round().to(torch.uint8)


def make_letters(packages: Path, out: Path | None = None) -> list[str]:
    """Writes the font letters file for the families of the font digits file (the same split by name), from the
    same unpacked packages; returns the families left out and why."""
    wanted = set(load("all").families)
    fonts, images, skipped = [], [], []
    for package in sorted(p for p in packages.iterdir() if (p / "metadata.json").is_file()):
        meta = json.loads((package / "metadata.json").read_text())
        font_id, family = meta.get("id", meta.get("fontId")), meta.get("family", meta.get("fontName"))
        if family not in wanted:
            continue
        path = font_file(package, font_id, meta["weights"])
        letters = None if path is None else prepared_letters(path)
        if letters is None:
            skipped.append(f"{family}: {'no latin normal file' if path is None else 'lacks a letter'}")
            continue
        version = json.loads((package / "package.json").read_text())["version"]
        fonts.append({"family": family, "file": path.name, "package": f"@fontsource/{font_id}@{version}"})
        images.append(letters)
    order = sorted(range(len(fonts)), key=lambda i: fonts[i]["family"].lower())
    out = Path(out or nondigits.LETTERS_PATH)
    save_file({"images": torch.stack([images[i] for i in order]).contiguous()}, str(out),
              metadata={"fonts": json.dumps([fonts[i] for i in order]), "alphabet": nondigits.ALPHABET,
                        "made_by": "python -m tools.build_fonts --letters"})
    nondigits._read_letters.cache_clear()
    return skipped


def make(packages: Path, out: Path | None = None) -> list[str]:
    """Writes the font digits file from unpacked Fontsource packages; returns the families left out and why."""
    fonts, images, skipped = [], [], []
    for package in sorted(p for p in packages.iterdir() if (p / "metadata.json").is_file()):
        meta = json.loads((package / "metadata.json").read_text())
        version = json.loads((package / "package.json").read_text())["version"]
        font_id, family = meta.get("id", meta.get("fontId")), meta.get("family", meta.get("fontName"))  # v5 / v4 keys
        path = font_file(package, font_id, meta["weights"])
        digits = None if path is None else prepared_digits(path)
        if digits is None:
            skipped.append(f"{family}: {'no latin normal file' if path is None else 'lacks a digit'}")
            continue
        licence = meta["license"] if isinstance(meta["license"], dict) else {"type": "Google Fonts (see attribution)",
                                                                             "attribution": meta["license"]}
        fonts.append({"family": family, "file": path.name, "package": f"@fontsource/{font_id}@{version}",
                      "license": licence["type"], "attribution": licence.get("attribution", "")})
        images.append(digits)
    out = Path(out or PATH)
    order = sorted(range(len(fonts)), key=lambda i: fonts[i]["family"].lower())
    fonts = [fonts[i] for i in order]
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"images": torch.stack([images[i] for i in order]).contiguous()}, str(out),
              metadata={"fonts": json.dumps(fonts), "made_by": "python -m tools.build_fonts --make"})
    read.cache_clear()
    return skipped


def handwriting_ids(catalogue: Path) -> list[str]:
    """Fontsource ids of the "handwriting" families in a Google Fonts catalogue (google-fonts-complete's JSON)."""
    families = json.loads(catalogue.read_text())
    return [re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            for name, font in sorted(families.items()) if font.get("category") == "handwriting"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    task = p.add_mutually_exclusive_group(required=True)
    task.add_argument("--ids", type=Path, metavar="CATALOGUE_JSON",
                      help="print the Fontsource ids of the catalogue's handwriting families")
    task.add_argument("--make", type=Path, metavar="FONT_PACKAGES",
                      help="folder of unpacked @fontsource packages, one folder each")
    task.add_argument("--letters", type=Path, metavar="FONT_PACKAGES",
                      help="the same folder: write the font letters file (non-digits) for the font digits' families")
    args = p.parse_args()
    if args.letters:
        for line in make_letters(args.letters):
            print("left out:", line)
        print(f"{nondigits.LETTERS_PATH}: {len(nondigits.letters('train'))} training and"
              f" {len(nondigits.letters('development'))} development letters")
        return
    if args.ids:
        print("\n".join(handwriting_ids(args.ids)))
        return
    for line in make(args.make):
        print("left out:", line)
    everything = load("all")
    print(f"{PATH}: {len(everything.families)} fonts, {len(load('train').families)} for training, "
          f"{len(load('development').families)} for development")


if __name__ == "__main__":
    main()
