"""'Not a digit': the non-digits, outlier exposure in training, the score and its threshold, and the verdict."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

import augmentations
import config
import data_utils
import main
from analysis import gate, numbers, rejection
from analysis.gate import Judgement
from deploy import predict, reading
from digits import font_digits, nondigits
from training import loop


def test_the_font_letters_split_follows_the_font_digits_split_and_leaves_out_letters_written_as_digits() -> None:
    train, development = nondigits.letters("train"), nondigits.letters("development")
    per_font = len(nondigits.ALPHABET) - len(nondigits.LIKE_DIGITS)
    assert len(train) == per_font * len(font_digits.load("train").families)
    assert len(development) == per_font * len(font_digits.load("development").families)
    assert train.dtype == torch.uint8 and train.shape[1:] == (28, 28) and train.float().mean() > 10  # ink drawn
    images, families = nondigits._read_letters(nondigits.LETTERS_PATH)
    assert families == font_digits.load("all").families  # the same fonts in the same order


def test_drawn_non_digits_are_the_same_for_the_same_stream_and_differ_between_streams() -> None:
    a, b = nondigits.drawn("scribbles", 6, 0), nondigits.drawn("scribbles", 6, 0)
    other = nondigits.drawn("scribbles", 6, 1)
    assert torch.equal(a, b) and not torch.equal(a, other)
    for kind in nondigits.KINDS[1:]:
        drawn = nondigits.drawn(kind, 6, 0)
        assert drawn.shape == (6, 28, 28) and (drawn.flatten(1).amax(1) > 0).all(), kind  # every one has ink


def test_textured_shapes_and_test_noise_do_not_depend_on_what_ran_before_in_the_process() -> None:
    def draw() -> tuple[Tensor, list[Tensor]]:
        nondigits.drawn.cache_clear()
        return nondigits.drawn("shapes", 20, 0), rejection.noise(8)

    shapes, noise = draw()
    Image.effect_noise((64, 64), 30)  # advances C's global rand(), which PIL's noise draws from
    torch.manual_seed(12345)
    again_shapes, again_noise = draw()
    assert torch.equal(shapes, again_shapes)
    assert all(torch.equal(a, b) for a, b in zip(noise, again_noise, strict=True))


def test_pen_letters_follow_the_hershey_fonts_strokes_the_same_for_the_same_stream_and_none_like_a_one() -> None:
    letters = len(nondigits.ALPHABET) - len(nondigits.LIKE_DIGITS)
    assert len(nondigits.pen_skeletons()) == len(nondigits.PEN_FONTS) * letters  # every font has every letter
    kind = nondigits.PEN_LETTERS
    a, again, other = nondigits.drawn(kind, 40, 0), nondigits.drawn.__wrapped__(kind, 40, 0), nondigits.drawn(kind, 40, 1)
    assert a.shape == (40, 28, 28) and a.dtype == torch.uint8 and torch.equal(a, again) and not torch.equal(a, other)
    assert (a.flatten(1).amax(1) > 200).all()  # each one inked, as --predict prepares a drawing
    assert not any(nondigits.like_a_one(letter.float() / 255) for letter in a)
    assert len({bytes(letter.flatten().tolist()) for letter in a}) == 40  # each one drawn its own way


def test_photo_crops_come_from_one_photograph_for_training_and_another_for_development() -> None:
    assert nondigits.PHOTOS[nondigits.TRAINING_SEED] != nondigits.PHOTOS[nondigits.DEVELOPMENT_SEED]
    for name in nondigits.PHOTOS.values():
        assert min(nondigits.photograph(name).size) >= 240  # room for the largest crop


def test_no_drawn_non_digit_stands_as_narrow_as_a_one() -> None:
    bar = torch.zeros(28, 28)
    bar[4:24, 12:17] = 1  # a filled bar: a 1 in MNIST's form, whatever it was drawn as
    wide = bar.t().clone()
    assert nondigits.like_a_one(bar) and not nondigits.like_a_one(wide)
    for kind in nondigits.KINDS[1:]:
        assert not any(nondigits.like_a_one(d.float() / 255) for d in nondigits.drawn(kind, 50, 1)), kind


def test_exposure_loss_is_cross_entropy_on_digits_and_pulls_non_digits_to_uniform() -> None:
    logits = torch.randn(5, 10)
    labels = torch.tensor([3, 1, 4, 1, 5])
    assert torch.allclose(loop.exposure_loss(logits, labels), F.cross_entropy(logits, labels))
    flat = torch.zeros(2, 10)
    both = loop.exposure_loss(torch.cat([logits, flat]), torch.cat([labels, torch.full((2,), data_utils.NON_DIGIT)]))
    assert torch.allclose(both, F.cross_entropy(logits, labels) + loop.OUTLIER_WEIGHT * math.log(10))
    sure = torch.zeros(1, 10, requires_grad=True)
    loop.exposure_loss(sure + torch.eye(10)[:1] * 5, torch.tensor([data_utils.NON_DIGIT])).backward()
    assert sure.grad[0, 0] > 0 and (sure.grad[0, 1:] < 0).all()  # a confident non-digit is pushed back to even


def test_exposure_loss_gives_each_of_k_models_its_own_loss() -> None:
    logits = torch.randn(6, 3, 10)
    labels = torch.tensor([1, 2, 3, 4, data_utils.NON_DIGIT, data_utils.NON_DIGIT]).unsqueeze(1).expand(6, 3)
    together = loop.exposure_loss(logits, labels)
    alone = [loop.exposure_loss(logits[:, k], labels[:, k]) for k in range(3)]
    assert together.shape == (3,) and torch.allclose(together, torch.stack(alone))


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> torch.Tensor:
    pool = torch.rand(20, 1, 28, 28)
    monkeypatch.setattr(augmentations, "training_non_digits", lambda device: pool.to(device))
    return pool


def test_training_batches_end_with_labelled_non_digits_made_from_seed_and_epoch_alone(small_pool) -> None:
    data = data_utils.MNISTTensors(torch.randint(0, 255, (40, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (40,)))
    batches = data_utils.TensorTrainBatches(data, 16, seed=3, outliers=0.25)
    first = list(batches.epoch(1))
    assert [len(labels) for _, labels in first] == [20, 20, 10]  # 16 + 4, 16 + 4, 8 + 2
    for images, labels in first:
        digits = int((labels != data_utils.NON_DIGIT).sum())
        assert (labels[digits:] == data_utils.NON_DIGIT).all() and (labels[:digits] >= 0).all()
    again = list(data_utils.TensorTrainBatches(data, 16, seed=3, outliers=0.25).epoch(1))
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(first, again))
    whole = list(data_utils.TensorTrainBatches(data, 16, seed=3, outliers=0.25, whole_epoch=True).epoch(1))
    assert [len(labels) for _, labels in whole] == [20, 20, 10]


def test_outliers_are_refused_out_of_range_and_with_the_classic_loader(capsys) -> None:
    assert main.main(["--model", "3", "--outliers", "2", "--epochs", "1"]) == 2
    assert "--outliers" in capsys.readouterr().err
    with pytest.raises(config.ConfigError, match="torchvision loader") as caught:
        config.resolve("3", {"loader": "torchvision", "augment": "rotation", "outliers": 0.5})
    assert caught.value.flag == "--outliers"


def test_a_record_from_before_outliers_reruns_without_them(tmp_path: Path) -> None:
    record = tmp_path / "old_metrics.json"
    record.write_text(json.dumps({"config": {"model": "3", "epochs": 2, "augment": "rotation"}}))
    assert config.read_settings(record)["outliers"] == 0.0


def test_auroc_and_the_threshold_mean_what_they_say() -> None:
    high, low = torch.tensor([0.9, 0.8, 0.95]), torch.tensor([0.1, 0.3])
    assert rejection.auroc(high, low) == 1.0 and rejection.auroc(low, high) == 0.0
    assert rejection.auroc(torch.tensor([0.5, 0.5]), torch.tensor([0.5])) == 0.5  # ties count half
    scores = torch.linspace(0, 1, 101)
    threshold = rejection.choose_threshold(scores, 0.05)
    assert rejection.rejected(scores, threshold) == pytest.approx(5, abs=1)


def test_a_reading_below_the_threshold_is_not_a_digit_and_says_its_score() -> None:
    unsure = torch.full((1, 10), 0.1)
    said = predict.Prediction.read("x.png", Judgement(unsure, 0.5), [False])
    assert said.verdict == "not a digit" and said.number is None and said.digit is None and said.top == []
    assert said.score == pytest.approx(0.1) and "below the threshold 0.500" in said.reason
    as_json = said.to_dict()
    assert as_json["verdict"] == "not a digit" and as_json["number"] is None and as_json["score"] == pytest.approx(0.1)
    assert said.line().startswith("x.png: not a digit (")
    sure = torch.eye(10)[7:8] * 0.9 + 0.01
    assert predict.Prediction.read("x.png", Judgement(sure, 0.5), [False]).number == "7"


def test_a_number_with_one_piece_unlike_any_digit_is_not_a_number() -> None:
    pieces = torch.stack([torch.eye(10)[2] * 0.9 + 0.01, torch.full((10,), 0.1)])
    said = predict.Prediction.read("row.png", Judgement(pieces, 0.5), [False, False])
    assert said.verdict == "not a digit" and "piece 2 of 2" in said.reason


def test_the_gates_score_is_the_detectors_probability_times_the_readers_and_one_unlike_piece_rejects_the_number() -> None:
    sure = torch.stack([torch.eye(10)[2] * 0.9 + 0.01, torch.eye(10)[5] * 0.9 + 0.01])  # the reader: 0.91 each
    said = predict.Prediction.read("row.png", Judgement(sure, 0.05, torch.tensor([0.9, 0.04])), [False, False])
    assert said.verdict == "not a digit" and "piece 2 of 2" in said.reason and said.score == pytest.approx(0.91 * 0.04)
    assert "the digit detector's 0.040 x the reader's 0.910" in said.reason
    assert said.digit_probability == pytest.approx(0.04)
    passed = predict.Prediction.read("row.png", Judgement(sure, 0.05, torch.tensor([0.9, 0.06])), [False, False])
    assert passed.verdict == "number" and passed.number == "25" and passed.score == pytest.approx(0.91 * 0.06)
    one = predict.Prediction.read("two.png", Judgement(sure[:1], 0.05, torch.tensor([0.5])), [False])
    assert one.verdict == "digit" and one.digit == 2 and one.score == pytest.approx(0.91 * 0.5)
    unsure = torch.stack([sure[0], torch.full((10,), 0.1)])  # a sure detector does not pass a reader's doubt
    assert predict.Prediction.read("row.png", Judgement(unsure, 0.2, torch.tensor([1.0, 1.0])), [False, False]).verdict \
        == "not a digit"


def test_the_numbers_benchmark_reads_through_the_gate_predict_serves(tmp_path: Path) -> None:
    import zoo
    from core.artifacts import REFERENCE_ROOT

    model = zoo.load("3", REFERENCE_ROOT, calibrated=True)
    for name, other in (("seven_one", lambda d: d.line([(150, 24), (150, 102)], fill=20, width=12)),
                        ("seven_box", lambda d: d.rectangle([(120, 30), (200, 100)], fill=20))):
        image = Image.new("L", (240, 120), 235)
        draw = ImageDraw.Draw(image)
        draw.line([(20, 24), (80, 24)], fill=20, width=12)
        draw.line([(80, 24), (40, 102)], fill=20, width=12)
        other(draw)
        image.save(tmp_path / f"{name}.png")
        served = zoo.predict(model, [tmp_path / f"{name}.png"])[0]
        measured = numbers.read(model, torch.from_numpy(np.asarray(image, dtype=np.float32) / 255))
        assert measured == (served.number if served.verdict == "number" else ""), name
        assert (name, served.verdict) in {("seven_one", "number"), ("seven_box", "not a digit")}


def _save(path: Path, gray: torch.Tensor) -> Path:
    Image.fromarray((gray * 255).round().byte().numpy()).save(path)
    return path


def test_predict_answers_not_a_digit_for_a_blank_page_and_below_the_threshold_given(tmp_path, capsys) -> None:
    blank = _save(tmp_path / "blank.png", torch.ones(60, 60))
    noise = _save(tmp_path / "noise.png", torch.rand(64, 64, generator=torch.Generator().manual_seed(0)))
    assert main.main(["--model", "3", "--predict", str(blank), str(noise), "--format", "json",
                      "--reject-below", "1"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["verdict"] for o in objects] == ["not a digit", "not a digit"]
    assert objects[0]["score"] == 0 and "blank" in objects[0]["reason"] and objects[1]["number"] is None
    assert main.main(["--model", "3", "--predict", str(noise), "--format", "json", "--reject-below", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] in ("digit", "number")  # 0: never rejected


def test_reject_below_is_refused_without_predict_and_out_of_range(capsys) -> None:
    assert main.main(["--model", "3", "--evaluate", "--reject-below", "0.5"]) == 2
    assert "--reject-below: works with --predict only" in capsys.readouterr().err
    assert main.main(["--model", "3", "--predict", "x.png", "--reject-below", "1.5"]) == 2
    assert "--reject-below" in capsys.readouterr().err


def test_an_ensemble_reads_the_mean_of_its_members_probabilities() -> None:
    members = [torch.nn.Linear(4, 10) for _ in range(3)]
    x = torch.randn(5, 4)
    together = predict.Ensemble(members, 0.3)
    mean = torch.stack([m(x).softmax(1) for m in members]).mean(0)
    assert torch.allclose(together(x).softmax(1), mean, atol=1e-6)
    assert gate.threshold_of(together) == 0.3 and gate.threshold_of(predict.with_threshold(together, 0.7)) == 0.7


def test_an_ensembles_threshold_is_chosen_from_its_members_development_files(tmp_path: Path) -> None:
    logits, detected = [torch.randn(200, 10), torch.randn(200, 10)], torch.rand(200)
    paths = [tmp_path / f"m{i}_development.safetensors" for i in range(2)]
    for path, z in zip(paths, logits):
        rejection.save_development(path, z, torch.randn(30, 10), detected)
    mean = torch.stack([z.softmax(1).half().float() for z in logits]).mean(0)
    expected = rejection.choose_threshold(mean.max(1).values * detected, 0.05)  # the gate's score, detector included
    assert rejection.ensemble_threshold(paths, 0.05) == pytest.approx(expected)
    with pytest.raises(rejection.MissingDevelopment, match="run --calibrate for this model first"):
        rejection.ensemble_threshold([paths[0], tmp_path / "never_development.safetensors"])
    rejection.save_development(paths[1], logits[1], torch.randn(30, 10), torch.rand(200))
    with pytest.raises(rejection.MissingDevelopment, match="different digit detectors"):
        rejection.ensemble_threshold(paths)


def test_an_ensemble_on_the_command_line_refuses_name_and_best(capsys) -> None:
    for extra in (["--name", "x"], ["--best"]):
        assert main.main(["--model", "1,2", "--predict", "x.png", *extra]) == 2
        assert "an ensemble" in capsys.readouterr().err


def test_an_ensemble_of_uncalibrated_members_is_one_line_naming_the_missing_file(tmp_path, capsys) -> None:
    import shutil

    from core.artifacts import REFERENCE_ROOT

    for stem in ("mnist_model_1", "mnist_model_2"):
        (tmp_path / "outputs").mkdir(exist_ok=True)
        shutil.copy(REFERENCE_ROOT / "outputs" / f"{stem}_params.safetensors", tmp_path / "outputs")
    seven = tmp_path / "seven.png"
    Image.new("L", (40, 40), 255).save(seven)
    assert main.main(["--model", "1,2", "--predict", str(seven), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and "mnist_model_1_development.safetensors: missing" in err and "Traceback" not in err


def test_the_committed_v3_answers_not_a_digit_to_a_blank_page_and_noise_and_still_reads_a_drawn_seven(tmp_path) -> None:
    import zoo

    blank = _save(tmp_path / "blank.png", torch.full((90, 90), 0.8))
    noise = _save(tmp_path / "noise.png", torch.rand(120, 120, generator=torch.Generator().manual_seed(3)))
    seven = Image.new("L", (120, 120), 235)
    draw = ImageDraw.Draw(seven)
    draw.line([(30, 24), (90, 24)], fill=20, width=12)
    draw.line([(90, 24), (50, 102)], fill=20, width=12)
    seven.save(tmp_path / "seven.png")
    from core.artifacts import REFERENCE_ROOT

    model = zoo.load("3", REFERENCE_ROOT, calibrated=True)
    assert gate.threshold_of(model) > 0.01  # the reference's --calibrate record carries its threshold
    said = zoo.predict(model, [blank, noise, tmp_path / "seven.png"])
    assert [s.verdict for s in said] == ["not a digit", "not a digit", "digit"] and said[2].digit == 7
    assert said[0].score == 0 and 0 <= said[1].score < gate.threshold_of(model)


@pytest.mark.parametrize(("read", "name", "missing", "damaged"), [
    (nondigits.letters, "font_letters.safetensors", "no font letters file", "not a font letters file"),
    (nondigits.objects, "fashion_objects.safetensors", "no objects file", "not the objects file")])
def test_a_missing_or_damaged_non_digits_file_is_named_in_one_error(tmp_path: Path, read, name, missing, damaged) -> None:
    (tmp_path / name).write_bytes(b"not a safetensors file")
    with pytest.raises(nondigits.NonDigitsError, match=f"{name}: {damaged}"):
        read("train", tmp_path / name)
    with pytest.raises(nondigits.NonDigitsError, match=f"missing.safetensors: {missing}"):
        read("train", tmp_path / "missing.safetensors")


def test_accepted_accuracy_is_shown_with_the_wrong_count_it_rounds_from() -> None:
    # 50 wrong of 9,996 accepted is 99.4998%: rounded alone it reads 99.50%, a bar it misses by one digit
    row = {"mnist_rejected": 0.04, "mnist_accepted_accuracy": 100 * 9946 / 9996}
    assert reading.accepted_read_right(row) == "99.50% (50 wrong of 9,996)"
    assert reading.accepted_read_right({"mnist_rejected": 0.0, "mnist_accepted_accuracy": 100.0}) == "100.00% (0 wrong of 10,000)"


def test_handwriting_fonts_letters_join_the_test_non_digits_only_where_installed(tmp_path: Path) -> None:
    assert rejection.missing_handwriting_fonts(tmp_path) == list(rejection.HANDWRITING_FONTS)
    assert "apt-get install fonts-bwht" in rejection.without_handwriting_fonts(tmp_path)
    # stand each Debian font's file in with one of matplotlib's typefaces: every file is read, 48 letters each
    dejavu = Path(rejection._mpl_data()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    files = [name for names in rejection.HANDWRITING_FONTS.values() for name in names]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(dejavu)
    assert rejection.missing_handwriting_fonts(tmp_path) == [] and rejection.without_handwriting_fonts(tmp_path) is None
    letters = rejection.handwriting_letters(tmp_path)
    assert len(letters) == len(files) * (len(nondigits.ALPHABET) - len(nondigits.LIKE_DIGITS))
    assert all(letter.min() < 0.5 < letter.max() for letter in letters)  # ink on paper, not a blank box


def test_other_hands_reads_the_development_handwriting_fonts_letters_and_says_when_they_are_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from benchmarks import other_hands  # noqa: PLC0415

    assert other_hands.main(["--models", "3", "--font-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install fonts-sjfonts" in err
    dejavu = Path(rejection._mpl_data()) / "fonts" / "ttf" / "DejaVuSans.ttf"  # a stand-in for every file
    for name in (n for names in rejection.DEVELOPMENT_HANDWRITING_FONTS.values() for n in names):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(dejavu)
    assert other_hands.main(["--models", "3", "--font-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "336 letters of 7 development handwriting fonts" in out
    assert len([line for line in out.splitlines() if line.startswith("model 3: ") and "% rejected" in line]) == 1
    assert not set(rejection.DEVELOPMENT_HANDWRITING_FONTS) & set(rejection.HANDWRITING_FONTS)  # apart from the test's


def test_objects_in_mnist_format_keep_training_and_development_images_apart() -> None:
    train, development = nondigits.objects("train"), nondigits.objects("development")
    each = len(nondigits.OBJECT_CLASSES)
    assert train.dtype == development.dtype == torch.uint8 and len(train) % each == 0 and len(development) % each == 0
    assert float(train[:, 0, 0].float().mean()) < 20  # as Fashion-MNIST stores them: light objects on black
    seen = {bytes(image.flatten().tolist()) for image in train}
    assert not any(bytes(image.flatten().tolist()) in seen for image in development)
    assert len(nondigits.prepared_objects("development")) >= len(development)  # every object, some in pieces


def test_the_detector_draws_each_extra_source_at_the_share_asked_and_none_at_zero(small_pool) -> None:
    from training import detector as training_detector  # noqa: PLC0415

    assert torch.equal(training_detector.non_digit_pool(), small_pool)  # the readers' non-digits
    assert torch.equal(training_detector.object_pool()[:, 0], nondigits.prepared_objects("train").float() / 255)
    things = torch.ones(3, 1, 28, 28)  # told apart from the pool's random images by being all ink
    pens = torch.full((3, 1, 28, 28), 0.5)  # and by being all grey
    gen = torch.Generator().manual_seed(0)
    share = lambda drawn, value=1: float((drawn[0] == value).flatten(1).all(1).float().mean())  # noqa: E731
    assert share(training_detector.pick_against(2000, gen, small_pool, [(things, 0)])) == 0
    assert share(training_detector.pick_against(2000, gen, small_pool)) == 0
    assert 0.45 < share(training_detector.pick_against(2000, gen, small_pool, [(things, 0.5)])) < 0.55
    assert 0.03 < share(training_detector.pick_against(2000, gen, small_pool, [(things, 0.05)])) < 0.07
    both = training_detector.pick_against(4000, gen, small_pool, [(things, 0.2), (pens, 0.3)])
    assert 0.17 < share(both) < 0.23 and 0.27 < share(both, 0.5) < 0.33  # two sources, each at its own share
    picked = augmentations.pick_non_digits(8, torch.Generator().manual_seed(0), torch.device("cpu"), things)
    assert torch.equal(picked, torch.ones(8, 1, 28, 28))  # drawn from the pool given, not the readers' default


@pytest.mark.parametrize("bad", ["1", "-0.1", "half"])
def test_a_share_of_objects_outside_0_to_1_is_one_usage_error(bad, capsys) -> None:
    from training import detector as training_detector  # noqa: PLC0415

    with pytest.raises(SystemExit) as exit_:
        training_detector.main(["--objects", bad])
    assert exit_.value.code == 2 and "--objects" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "named"), [(["--pen-letters", "1"], "--pen-letters"),
                                             (["--objects", "0.6", "--pen-letters", "0.5"], "sum to at most 1")])
def test_a_share_of_pen_letters_out_of_range_or_past_the_objects_is_one_usage_error(argv, named, capsys) -> None:
    from training import detector as training_detector  # noqa: PLC0415

    with pytest.raises(SystemExit) as exit_:
        training_detector.main(argv)
    assert exit_.value.code == 2 and named in capsys.readouterr().err


def test_the_objects_benchmark_reads_development_objects_and_names_a_missing_file(monkeypatch, capsys) -> None:
    from benchmarks import objects  # noqa: PLC0415

    real = nondigits.objects
    monkeypatch.setattr(nondigits, "objects", lambda split, path=None: real(split)[::100])  # two of each class
    assert objects.main(["--models", "3"]) == 0
    out = capsys.readouterr().out
    assert "20 development objects (2 of each of 10 classes)" in out
    assert len([line for line in out.splitlines() if line.startswith("model 3: ") and "% rejected" in line]) == 1
    monkeypatch.setattr(nondigits, "OBJECTS_PATH", Path("/nonexistent/fashion_objects.safetensors"))
    monkeypatch.setattr(nondigits, "objects", real)
    assert objects.main(["--models", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fashion_objects.safetensors: no objects file" in err


def test_animal_silhouettes_are_test_non_digits_of_every_class_and_a_missing_file_is_one_error(tmp_path: Path) -> None:
    animals = rejection.animal_silhouettes()
    assert len(animals) == 10 * 50 and all(a.shape == (28, 28) and 0 <= float(a.min()) < float(a.max()) <= 1 for a in animals)
    picked = rejection._evenly(animals, 20)  # noqa: SLF001 - fewer per kind still takes every class alike
    assert [next(i for i, a in enumerate(animals) if a is p) // 50 for p in picked] == [c for c in range(10) for _ in (0, 1)]
    with pytest.raises(nondigits.NonDigitsError, match="missing.safetensors: no animal silhouettes file"):
        rejection.animal_silhouettes(tmp_path / "missing.safetensors")
    # the test set's sources stay apart from training's and development's: no animal is a Fashion-MNIST image
    fashion = {bytes(image.flatten().tolist()) for split in ("train", "development") for image in nondigits.objects(split)}
    assert not any(bytes((a * 255).round().byte().flatten().tolist()) in fashion for a in animals)


def test_building_the_animals_file_unpickles_arrays_and_nothing_else() -> None:
    import pickle  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from tools import build_objects  # noqa: PLC0415

    arrays = pickle.dumps(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert build_objects._Arrays(io.BytesIO(arrays)).load().tolist() == [[0, 1, 2], [3, 4, 5]]  # noqa: SLF001
    hostile = pickle.dumps(print)  # a pickle naming any other callable would run it
    with pytest.raises(pickle.UnpicklingError, match="builtins.print is not part of an array"):
        build_objects._Arrays(io.BytesIO(hostile)).load()  # noqa: SLF001
