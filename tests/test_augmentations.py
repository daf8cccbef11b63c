"""Augmentation strategies: same shape and range, a function of the generator's seed only, and each one
actually varies the batch (rotation is exactly the design card's +-7 deg)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import augmentations
import config
import data_utils
import main
from analysis import external
from digits import prepare


def _batch() -> torch.Tensor:
    images = torch.zeros(16, 1, 28, 28)
    images[:, :, 6:22, 12:16] = 1.0  # a bar, a "1"
    images[:, :, 6:9, 8:20] = 0.7
    return images


@pytest.mark.parametrize("name", list(augmentations.AUGMENTATIONS))
def test_every_augmentation_keeps_shape_and_range_and_repeats_for_a_seed(name) -> None:
    images, labels = _batch(), torch.arange(16) % 10
    first = augmentations.augment(name, images.clone(), torch.Generator().manual_seed(3), labels)
    again = augmentations.augment(name, images.clone(), torch.Generator().manual_seed(3), labels)
    other = augmentations.augment(name, images.clone(), torch.Generator().manual_seed(4), labels)
    assert first.shape == images.shape and first.dtype == images.dtype
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.equal(first, again)
    if name != "none":
        assert not torch.equal(first, images) and not torch.equal(first, other)


def test_rotation_is_the_design_cards_seven_degrees_nearest_neighbour() -> None:
    images, gen = _batch(), torch.Generator().manual_seed(9)
    angles = augmentations.random_angles(16, torch.Generator().manual_seed(9))
    assert torch.equal(augmentations.augment("rotation", images.clone(), gen), augmentations.rotate(images, angles))
    assert float(angles.abs().max()) <= 7.0


def test_thickness_makes_strokes_thicker_or_thinner() -> None:
    out = augmentations.thickness(_batch(), torch.Generator().manual_seed(0))
    ink = (out > 0.5).flatten(1).sum(1)
    base = int((_batch()[0] > 0.5).sum())
    assert (ink > base).any() and (ink < base).any()


def test_the_classic_loader_refuses_what_it_cannot_do_and_the_run_records_the_augmentation(synthetic_root, tmp_path,
                                                                                        capsys) -> None:
    with pytest.raises(config.ConfigError, match="torchvision loader"):
        config.resolve("1", {"augment": "elastic", "loader": "torchvision"})
    out = tmp_path / "out"
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), "--no-verify", "--model", "1",
                      "--epochs", "1", "--device", "cpu", "--augment", "handwriting"]) == 0
    import json
    assert json.loads((out / "outputs" / "mnist_model_1_metrics.json").read_text())["config"]["augment"] == "handwriting"
    batches = data_utils.TensorTrainBatches(data_utils.load_mnist(synthetic_root, verify=False)["train"], 32, 1,
                                            augment="affine")
    first, again = next(iter(batches.epoch(1)))[0], next(iter(batches.epoch(1)))[0]
    assert torch.equal(first, again)  # a batch depends only on (seed, epoch)


def test_stretch_widens_a_narrow_digit_to_the_box_and_keeps_its_strokes_a_pens_width() -> None:
    images = torch.zeros(64, 1, 28, 28)
    for row in range(4, 24):  # a slanted 2-pixel "1", 7 columns wide and 20 rows tall
        col = 10 + (row - 4) * 5 // 19
        images[:, :, row, col: col + 2] = 1.0
    out = augmentations.stretch(images, torch.Generator().manual_seed(0))
    ink = out[:, 0] > 0.25
    widths = ink.any(1).sum(1)
    stretched = widths > 7
    assert stretched.sum() > 10 and (widths == 7).sum() > 10  # about half of them, the rest kept
    assert (widths[stretched] >= 17).all()  # 7 columns -> close to the 20-pixel box
    assert int(ink[stretched][:, 6:22].sum(2).max()) <= 4  # each row still crosses one thin stroke
    assert torch.equal(ink.any(2).sum(1), torch.full((64,), 20))  # its height already filled the box


def test_coarse_makes_a_blocky_binary_scan_of_some_images_and_keeps_the_rest() -> None:
    images = _batch()
    out = augmentations.coarse(images, torch.Generator().manual_seed(1))
    changed = (out != images).flatten(1).any(1)
    assert changed.any() and not changed.all()
    assert torch.equal(out[~changed], images[~changed])


def test_the_stroke_windows_compute_what_max_pool2d_does() -> None:
    images = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # either sign: the padding matters
    assert torch.equal(augmentations.dilate3x3(images), F.max_pool2d(images, 3, stride=1, padding=1))
    assert torch.equal(augmentations.erode2x2(images), -F.max_pool2d(-images, 2, stride=1, padding=1)[..., 1:, 1:])
    for w in range(1, 5):  # stretch's erosion back to a pen's width: windows of w + 1 pixels, zeros beyond the image
        for dim, size, pad in ((-1, (1, w + 1), (w // 2, w - w // 2, 0, 0)), (-2, (w + 1, 1), (0, 0, w // 2, w - w // 2))):
            expected = -F.max_pool2d(F.pad(-images, pad, value=0.0), size, stride=1)
            assert torch.equal(augmentations._window(images, w // 2, w - w // 2, dim, torch.minimum, 0.0), expected)


def test_each_model_trains_with_its_recipes_augmentation_unless_a_flag_says_otherwise() -> None:
    assert config.resolve("1", {}).augment == "rotation-scans-third-fonts"  # picked on held-out writers (docs/handwriting.md)
    assert config.resolve("2", {}).augment == "rotation-scan"
    assert config.resolve("3", {}).augment == "rotation-scans-third-fonts"
    assert config.resolve("fc-bn", {}).augment == "rotation-scan"
    assert config.resolve("cnn-bn", {}).augment == "rotation-scan"
    assert config.resolve("cnn", {}).augment == "rotation"  # failed the selection
    assert config.resolve("1", {"augment": "rotation"}).augment == "rotation"
    with pytest.raises(config.ConfigError, match="add --augment rotation"):
        config.check(config.resolve("1", {"loader": "torchvision"}))


def test_scan_makes_the_scans_the_external_evaluation_makes_for_the_whole_batch_at_once(mnist_root) -> None:
    digits = data_utils.load_mnist(mnist_root)["train"].images[:400].float() / 255.0
    cells = prepare.binary_scan(digits[:, None], torch.full((400,), 0.5))
    reference = torch.stack([F.interpolate(prepare.ink_box(d, d > 0.1)[None, None], size=(16, 16), mode="area")[0, 0] > 0.5
                             for d in digits]).float()  # one digit at a time, F.interpolate's own area sampling
    assert int((cells != reference).sum()) <= 4  # float rounding at the threshold, out of 400 x 256 cells
    prepared = prepare.prepare_scan(reference)[:, 0]
    by_predict = prepare.as_scans(reference)  # each one a 128x128 PNG through --predict's mnistify
    same = (prepared - by_predict).abs().amax((1, 2)) < 1e-4
    assert float(same.float().mean()) >= 0.98  # the rest: scans that are mostly ink, which mnistify cleans differently
    out = augmentations.scan(digits[:64, None], torch.Generator().manual_seed(0))
    assert torch.equal(out.amax((1, 2, 3)), torch.ones(64))  # brought to full ink like every prepared digit


def test_block_scan_makes_optdigits_blocks_and_scans_prepare_them_close_to_predict(mnist_root) -> None:
    digits = data_utils.load_mnist(mnist_root)["train"].images[:200].float() / 255.0
    cells = external.block_scans(digits)
    assert cells.shape == (200, 8, 8) and torch.equal(cells * 16, (cells * 16).round())  # counts of 4x4 blocks
    narrow = torch.zeros(1, 28, 28)
    narrow[0, 4:24, 12:16] = 0.9  # a "1": the bitmap keeps its aspect, 32 tall and about 6 wide, centred
    one = external.block_scans(narrow)[0]
    assert bool(one[0].any() and one[-1].any()) and not one[:, :3].any() and not one[:, 5:].any()
    prepared = prepare.prepare_scan(cells)[:, 0]
    by_predict = prepare.as_scans(cells)  # each one a 128x128 PNG through --predict's mnistify
    assert float((prepared - by_predict).abs().mean()) < 0.05  # close, not exact: prepare.clean's shadow estimate
    gen = torch.Generator().manual_seed(0)
    out = augmentations.scans(digits[:64, None], gen)
    assert torch.equal(out.amax((1, 2, 3)), torch.ones(64))


def test_a_blank_digit_is_kept_by_scan() -> None:
    images = _batch()
    images[3] = 0.0
    out = augmentations.scan(images, torch.Generator().manual_seed(0))
    assert not out[3].any() and not torch.equal(out[0], images[0])


@pytest.mark.parametrize("scanner", [augmentations.scan, augmentations.scans])
def test_scanning_only_the_kept_images_gives_the_kept_scans_bit_for_bit(mnist_root, scanner) -> None:
    images = data_utils.load_mnist(mnist_root)["train"].images[:200].float().div(255).unsqueeze(1)
    kept = torch.rand(200, 1, 1, 1, generator=torch.Generator().manual_seed(1)) < 1 / 3
    every = scanner(images, torch.Generator().manual_seed(2))
    only = scanner(images, torch.Generator().manual_seed(2), kept)
    assert torch.equal(torch.where(kept, every, images), torch.where(kept, only, images))
    assert torch.equal(only[~kept.view(-1)], images[~kept.view(-1)])  # the others were not scanned at all
    assert not torch.equal(every, images)
