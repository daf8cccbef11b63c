"""Handwriting fonts' digits: the committed file, its split, how it is made, and the recipe that draws from it."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
import torch

import augmentations
import data_utils
from digits import font_digits, prepare
from tools import build_fonts

DEJAVU = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def test_every_font_is_a_training_or_a_development_font_never_both() -> None:
    everything, train, development = (font_digits.load(s) for s in ("all", "train", "development"))
    assert set(train.families).isdisjoint(development.families)
    assert sorted(train.families + development.families) == sorted(everything.families)
    assert len(development.families) == len(everything.families) // font_digits.DEVELOPMENT_EVERY
    assert len(train.families) > 100


def test_the_committed_file_holds_ten_different_digits_per_font_in_mnists_box() -> None:
    images, labels = font_digits.load("all").digits()
    assert images.dtype == torch.uint8 and tuple(images.shape[1:]) == (28, 28)
    assert torch.equal(labels[:10], torch.arange(10)) and len(labels) == len(images)
    ink = images > 25
    assert bool(ink.any((1, 2)).all())
    heights, widths = ink.any(2).sum(1), ink.any(1).sum(1)
    assert int(torch.maximum(heights, widths).max()) <= prepare.BOX + 1  # mnistify's 20-pixel box
    per_font = font_digits.load("all").images.flatten(2).float()
    distance = torch.cdist(per_font, per_font) + torch.eye(10) * 1e9
    assert float(distance.min()) > 1.0  # no font drew two digits alike


def test_a_missing_or_damaged_font_digits_file_is_named(tmp_path) -> None:
    with pytest.raises(font_digits.FontDigitsError, match="missing.safetensors"):
        font_digits.load("train", tmp_path / "missing.safetensors")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(font_digits.FontDigitsError, match="damaged.safetensors"):
        font_digits.load("train", damaged)
    with pytest.raises(ValueError, match="split"):
        font_digits.load("test")


def test_a_fonts_digits_are_prepared_as_predict_prepares_a_file() -> None:
    digits = build_fonts.prepared_digits(DEJAVU)
    assert digits is not None and digits.shape == (10, 28, 28) and digits.dtype == torch.uint8
    drawn = build_fonts.render(build_fonts.ImageFont.truetype(str(DEJAVU), build_fonts.RENDER_SIZE), "7")
    assert torch.equal(digits[7], prepare.mnistify(drawn).mul(255).round().to(torch.uint8))


def _glyphs_that_say_their_digit(device: torch.device) -> torch.Tensor:
    """Stand-in fonts: digit d of every font is an image of the constant (d + 1) / 20."""
    return (torch.arange(10).float().add(1).div(20)).view(1, 10, 1, 1).expand(3, 10, 28, 28).to(device)


def test_fonts_replaces_the_drawn_share_by_the_same_digit_and_keeps_the_rest(monkeypatch) -> None:
    monkeypatch.setattr(augmentations, "_training_fonts", _glyphs_that_say_their_digit)
    images, labels = torch.zeros(200, 1, 28, 28), torch.arange(200) % 10
    everything = augmentations.fonts(images, torch.Generator().manual_seed(0), labels, share=1.0)
    assert torch.allclose(everything[:, 0, 14, 14], (labels.float() + 1) / 20)  # the centre keeps the glyph's value
    nothing = augmentations.fonts(images, torch.Generator().manual_seed(0), labels, share=0.0)
    assert torch.equal(nothing, images)
    some = augmentations.fonts(images, torch.Generator().manual_seed(0), labels)
    replaced = some.flatten(1).amax(1) > 0
    assert 5 <= int(replaced.sum()) <= 40  # about a tenth of 200


def test_a_recipe_that_draws_digits_of_a_class_needs_the_labels_and_gets_them_in_training(synthetic_root) -> None:
    with pytest.raises(ValueError, match="labels"):
        augmentations.augment("rotation-scans-third-fonts", torch.zeros(4, 1, 28, 28), torch.Generator())
    train = data_utils.load_mnist(synthetic_root, verify=False)["train"]
    batches = data_utils.TensorTrainBatches(train, 32, 1, augment="rotation-scans-third-fonts")
    (first, labels), (again, _) = next(iter(batches.epoch(1))), next(iter(batches.epoch(1)))
    assert first.shape == (32, 1, 28, 28) and len(labels) == 32 and torch.equal(first, again)


def test_training_with_the_fonts_recipe_and_no_font_file_stops_before_the_first_epoch(synthetic_root, tmp_path,
                                                                                      monkeypatch, capsys) -> None:
    import main

    monkeypatch.setattr(font_digits, "PATH", tmp_path / "gone.safetensors")
    augmentations._training_fonts.cache_clear()
    out = tmp_path / "out"
    code = main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), "--no-verify", "--model", "1",
                      "--epochs", "1", "--device", "cpu", "--augment", "rotation-scans-third-fonts"])
    augmentations._training_fonts.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and "gone.safetensors" in err and "Traceback" not in err
    assert not list(out.rglob("*.pth")) and not list(out.rglob("*metrics.json"))


def test_the_catalogue_gives_the_fontsource_ids_of_its_handwriting_families_only(tmp_path) -> None:
    catalogue = tmp_path / "google-fonts.json"
    catalogue.write_text('{"Caveat": {"category": "handwriting"}, "Roboto": {"category": "sans-serif"},'
                         ' "Mr De Haviland": {"category": "handwriting"}}')
    assert build_fonts.handwriting_ids(catalogue) == ["caveat", "mr-de-haviland"]
