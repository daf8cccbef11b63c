"""Letters in other hands: what V1-V3 answer to the letters of handwriting fonts outside the training catalogue.

    apt-get install fonts-sjfonts fonts-rufscript fonts-tomsontalks fonts-seto fonts-dustin   # Debian
    python -m benchmarks.other_hands

Every training and development font is a Google Fonts family; the test set's handwriting letters come from 16
Debian fonts that are not (``analysis.rejection.HANDWRITING_FONTS``). Seven more Debian handwriting fonts
(``DEVELOPMENT_HANDWRITING_FONTS``) are the development stand-in for them: each letter read as ``--predict``
reads a file (cleaned, split where the ink looks like a row of digits, the gate), the share answered "not a
digit" printed per model, with every letter a model accepted and what it read. Nothing here chooses anything, and
no test set is read.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import zoo
from analysis import rejection
from core.artifacts import REFERENCE_ROOT
from deploy import reading

MODELS = ("1", "2", "3")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated model keys (default: 1,2,3)")
    p.add_argument("--font-dir", type=Path, default=rejection.FONT_DIR, help="where the fonts' files are (default:"
                   f" {rejection.FONT_DIR})")
    args = p.parse_args(argv)
    fonts = rejection.DEVELOPMENT_HANDWRITING_FONTS
    missing = rejection.missing_handwriting_fonts(args.font_dir, fonts)
    if missing:
        print(f"other_hands: error: the development handwriting fonts are not installed: apt-get install"
              f" {' '.join(missing)} (Debian)", file=sys.stderr)
        return 2
    names, letters = zip(*rejection.named_handwriting_letters(args.font_dir, fonts))
    print(f"{len(letters)} letters of {sum(map(len, fonts.values()))} development handwriting fonts; read as"
          " --predict reads a file")
    for key in args.models.split(","):
        said = reading.read_all(zoo.load(key, REFERENCE_ROOT, calibrated=True), list(letters))
        accepted = Counter(f"{name}>{s.number}" for name, s in zip(names, said) if s.verdict != "not a digit")
        rejected = 100 * sum(s.verdict == "not a digit" for s in said) / len(said)
        print(f"model {key}: {rejected:.1f}% rejected; accepted: "
              + " ".join(f"{k}" + (f" x{n}" if n > 1 else "") for k, n in sorted(accepted.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
