"""The digit detector in front of every reader (analysis.detector): what it stops, what it lets through, its files."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors import safe_open
from safetensors.torch import load_file

import data_utils
import main
import zoo
from analysis import detector, rejection
from core.artifacts import REFERENCE_ROOT, safetensors_bytes
from deploy import predict
from digits import nondigits
from training import detector as training_detector


@pytest.fixture
def detector_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty place for the detector's files, read instead of the repository's."""
    monkeypatch.setattr(detector, "ROOT", tmp_path)
    detector._load.cache_clear()  # noqa: SLF001
    yield tmp_path
    detector._load.cache_clear()  # noqa: SLF001


def _seven(path: Path) -> Path:
    page = Image.new("L", (120, 120), 235)
    draw = ImageDraw.Draw(page)
    draw.line([(30, 24), (90, 24)], fill=20, width=12)
    draw.line([(90, 24), (50, 102)], fill=20, width=12)
    page.save(path)
    return path


def test_the_committed_detector_has_a_threshold_chosen_on_development_data_only() -> None:
    found = detector.load()
    assert found is not None and 0 < found.threshold < 1
    record = json.loads(detector.paths(REFERENCE_ROOT)[1].read_text())
    assert record["reject_below"] == pytest.approx(found.threshold)
    assert "no test set" in record["note"] and record["chosen_on"] == "1% of the development digits"
    chosen_on = {k: v for k, v in record["rejected_percent"].items() if "(chosen on)" in k}
    assert len(chosen_on) == 3 and all(0 <= v <= 5 for v in chosen_on.values())
    assert all("development" in k and not any(t in k for t in ("SEMEION", "test")) for k in chosen_on)


@pytest.mark.parametrize("key", ["1", "2", "3"])
def test_the_committed_readers_thresholds_are_chosen_on_the_gates_score_with_mfeat_among_the_development_digits(
        key: str) -> None:
    record = json.loads((REFERENCE_ROOT / "outputs" / f"mnist_model_{key}_calibration.json").read_text())
    chosen = record["rejection"]
    assert "digit detector" in chosen["score"] and rejection.STRETCHED in chosen["chosen_on_sets"]
    assert not any("test" in name or "SEMEION" in name for name in chosen["chosen_on_sets"])
    assert 0 < record["reject_below"] < 0.1  # a product with a near all-or-nothing detector: low
    with safe_open(str(REFERENCE_ROOT / "outputs" / f"mnist_model_{key}_development.safetensors"), "pt") as f:
        assert "detector" in f.keys()  # what an ensemble's threshold is chosen from


def test_letters_a_reader_takes_for_digits_are_stopped_by_the_detector() -> None:
    letters = nondigits.letters("development")[:240]  # five development fonts: never trained on
    v3 = zoo.load("3", REFERENCE_ROOT, calibrated=True)
    said = predict.predict_images(v3, list(letters))
    stopped = sum(s.verdict == "not a digit" for s in said)
    by_detector = sum(s.verdict == "not a digit" and s.digit_probability < 0.5 for s in said)
    assert stopped >= 150 and by_detector >= 140, (stopped, by_detector)
    alone = predict.predict_images(predict.with_threshold(v3, v3.reject_below), list(letters))
    assert [s.verdict for s in alone] == [s.verdict for s in said]  # the same reader, the same gate


def test_mnist_test_digits_pass_the_detector(mnist_root: Path) -> None:
    test = data_utils.load_mnist(mnist_root)["test"]
    found = detector.load()
    passed = found.digit_probability(test.images[:1000].float() / 255) >= found.threshold
    assert int(passed.sum()) >= 990


def test_reject_below_zero_turns_the_detector_off_as_well(runs, tmp_path, capsys) -> None:
    m = [c for c in nondigits.ALPHABET if c not in nondigits.LIKE_DIGITS].index("M")
    letter = Image.fromarray(nondigits.letters("development")[m].numpy())  # the first development font's M
    letter.save(tmp_path / "m.png")
    assert main.main(["--model", "3", "--predict", str(tmp_path / "m.png"), "--format", "json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["verdict"] == "not a digit" and said["digit_probability"] < 0.5
    assert main.main(["--model", "3", "--predict", str(tmp_path / "m.png"), "--format", "json",
                      "--reject-below", "0"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["verdict"] == "digit" and said["digit_probability"] is None  # no detector consulted


def test_without_the_detectors_files_a_reader_decides_alone(detector_root, tmp_path) -> None:
    assert detector.load() is None
    [said] = zoo.predict(zoo.load("3", REFERENCE_ROOT, calibrated=True), [_seven(tmp_path / "seven.png")])
    assert said.digit == 7


@pytest.mark.parametrize("damage", ["weights", "record", "one missing"])
def test_a_damaged_detector_is_one_line_naming_its_file_and_exit_2(runs, detector_root, tmp_path, capsys, damage) -> None:
    weights, record = detector.paths(detector_root)
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not safetensors" if damage == "weights" else Path(detector.paths(REFERENCE_ROOT)[0]).read_bytes())
    if damage != "one missing":
        record.write_text("{}" if damage == "record" else json.dumps({"reject_below": 0.5}))
    assert main.main(["--model", "3", "--predict", str(_seven(tmp_path / "seven.png"))]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("main.py: error:")]
    assert len(errors) == 1 and "digit_detector" in errors[0] and "Traceback" not in err


def test_a_numbers_pieces_pass_the_detector_as_whole_digits_do() -> None:
    record = json.loads(detector.paths(REFERENCE_ROOT)[1].read_text())
    [pieces] = [v for k, v in record["rejected_percent"].items() if k.startswith("digits cut from")]
    assert pieces <= 1.0  # one threshold for a whole digit and for a digit cut from a number


def test_the_detector_judges_shape_not_how_the_ink_was_varied() -> None:
    """Digits and non-digits are varied alike in training: warped or crisp, a letter is no digit all the same."""
    import augmentations  # noqa: PLC0415

    found, gen = detector.load(), torch.Generator().manual_seed(0)
    letters = nondigits.letters("development")[:480].float().div(255).unsqueeze(1)
    crisp = rejection.rejected(found.digit_probability(letters[:, 0]), found.threshold)
    warped = augmentations.elastic(augmentations.affine(letters, gen), gen).clamp(0, 1)
    assert abs(rejection.rejected(found.digit_probability(warped[:, 0]), found.threshold) - crisp) < 10


def test_scans_store_that_share_of_digits_and_non_digits_alike_as_other_sets_store_theirs_and_none_by_default() -> None:
    images = nondigits.letters("development")[:200].float().div(255).unsqueeze(1)
    plain = training_detector.varied(images, torch.Generator().manual_seed(0))
    assert torch.equal(plain, training_detector.varied(images, torch.Generator().manual_seed(0), 0.0))  # no draw
    scanned = training_detector.varied(images, torch.Generator().manual_seed(0), 1.0)
    assert scanned.shape == images.shape and 0 <= float(scanned.min()) and float(scanned.max()) <= 1
    assert float((scanned != plain).flatten(1).any(1).float().mean()) > 0.8  # all scanned (a scan may be its own)
    some = training_detector.varied(images, torch.Generator().manual_seed(0), 0.25)
    assert 0.1 < float((some != plain).flatten(1).any(1).float().mean()) < 0.4
    with pytest.raises(SystemExit) as exit_:
        training_detector.main(["--scans", "1.5"])
    assert exit_.value.code == 2


@pytest.mark.parametrize(("argv", "named"), [(["--width", "4"], "--width"),
                                             (["--width", "48", "--fine-tune", "."], "--fine-tune continues")])
def test_a_width_too_small_or_given_to_fine_tuned_members_is_one_usage_error(argv, named, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        training_detector.main(argv)
    assert exit_.value.code == 2 and named in capsys.readouterr().err


def test_a_detector_of_several_members_averages_their_digit_probabilities(detector_root) -> None:
    torch.manual_seed(0)
    nets = [detector.build().eval(), detector.build(width=8).eval()]  # members may differ in width
    weights, record = detector.paths(detector_root)
    weights.parent.mkdir(parents=True)
    weights.write_bytes(safetensors_bytes(detector.state_of(nets)))
    record.write_text(json.dumps({"reject_below": 0.5}))
    found = detector.load()
    letters = nondigits.letters("development")[:20].float() / 255
    alone = [detector.Detector([net], 0.5).digit_probability(letters) for net in nets]
    assert [net.layers[0].out_channels for net in found.nets] == [detector.architecture.WIDTH, 8]
    assert len(found.nets) == 2 and not torch.allclose(alone[0], alone[1])
    assert torch.allclose(found.digit_probability(letters), (alone[0] + alone[1]) / 2)


def test_while_remembering_the_detector_answers_a_repeated_question_as_computed_without_running_again(
        detector_root) -> None:
    torch.manual_seed(0)
    weights, record = detector.paths(detector_root)
    weights.parent.mkdir(parents=True)
    weights.write_bytes(safetensors_bytes(detector.state_of([detector.build(width=8).eval()])))
    record.write_text(json.dumps({"reject_below": 0.5}))
    found = detector.load()
    calls = []
    found.nets[0].register_forward_hook(lambda *_: calls.append(1))
    digits, stretched = torch.rand(3, 28, 28), torch.tensor([False, True, False])
    computed = found.digit_probability(digits, stretched)
    asked = len(calls)
    with detector.remembering():
        first = found.digit_probability(digits, stretched)
        first[0] = -1.0  # what a caller does with its answer is its own
        again = found.digit_probability(digits.clone(), stretched.clone())
        before = len(calls)
        other = found.digit_probability(digits, torch.zeros(3, dtype=torch.bool))  # another question
    assert before == 2 * asked and len(calls) > before  # the repeated question ran no member, another did
    assert torch.equal(again, computed) and not torch.equal(other, computed)
    before = len(calls)
    found.digit_probability(digits, stretched)
    assert len(calls) == before + asked and found.remembered is None  # forgotten once the block ends


def test_a_file_of_one_member_is_read_as_one_detector() -> None:
    net = detector.build().eval()
    assert set(detector.state_of([net])) == set(net.state_dict())  # the single detector's file, as it always was
    [again] = detector.members(detector.state_of([net]))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), net.state_dict().values()))


@pytest.mark.parametrize("text", ["a", "1,1", "-1", ""])
def test_detector_seeds_must_be_distinct_non_negative_integers(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="seeds"):
        training_detector.seed_list(text)


def test_training_the_detector_refuses_a_member_it_has_and_a_choice_without_weights(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        training_detector.main(["--choose-only", "--out-dir", str(tmp_path)])
    assert stop.value.code == 2 and "--choose-only: no detector under" in capsys.readouterr().err
    (tmp_path / "outputs").mkdir()
    for path in detector.paths(REFERENCE_ROOT):  # the committed detector, whose members' seeds its record names
        (tmp_path / "outputs" / path.name).write_bytes(path.read_bytes())
    seed = json.loads(detector.paths(tmp_path)[1].read_text())["members"][0]["seed"]
    with pytest.raises(SystemExit) as stop:
        training_detector.main(["--add", "--seeds", str(seed), "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "are members already" in err and "Traceback" not in err


class _Inkiness(torch.nn.Module):
    """A stand-in detector: the more ink, the more digit-like (its "not a digit" logit falls with the ink)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 11)
        logits[:, 10] = -x.flatten(1).mean(1) * 10
        return logits


def test_mining_keeps_the_most_digit_like_non_digits_after_skipping_the_first_q() -> None:
    inks = torch.rand(40, generator=torch.Generator().manual_seed(0))
    candidates = inks.view(-1, 1, 1, 1).expand(-1, 1, 28, 28).contiguous()
    by_ink = inks.sort(descending=True).values  # the most digit-like first
    net = _Inkiness().train()
    kept = candidates[training_detector.mined(net, candidates, 10, 0.25)][:, 0, 0, 0]
    assert torch.allclose(kept.sort(descending=True).values, by_ink[10:20])  # the first quarter skipped
    assert torch.allclose(candidates[training_detector.mined(net, candidates, 10, 0)][:, 0, 0, 0].sort(descending=True).values,
                          by_ink[:10])  # q = 0: the most digit-like of all
    assert torch.allclose(candidates[training_detector.mined(net, candidates, 10, 0.9)][:, 0, 0, 0].sort().values,
                          by_ink[30:].sort().values)  # never fewer than asked
    assert net.training  # scored evaluating, handed back training


def test_fine_tuning_needs_a_saved_member_of_each_seed(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        training_detector.main(["--fine-tune", str(tmp_path), "--seeds", "0"])
    assert exit_.value.code == 2 and "--fine-tune: no member of seed [0]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        training_detector.main(["--mine", "1"])
    assert exit_.value.code == 2 and "--mine" in capsys.readouterr().err


def _saved_pair(saved: Path) -> list[torch.nn.Module]:
    """Two members, seeds 4 and 7, saved under ``saved`` with a record."""
    nets = [detector.build().eval() for _ in range(2)]
    _save(saved, nets)
    detector.paths(saved)[1].write_text(json.dumps({"reject_below": 0.5, "command": "the first", "members": [
        {"seed": 4, "epochs": 30}, {"seed": 7, "epochs": 30}]}))
    return nets


def _save(root: Path, nets: list) -> None:
    """A detector's weights under ``root``, as training writes them."""
    detector.paths(root)[0].parent.mkdir(parents=True, exist_ok=True)
    detector.paths(root)[0].write_bytes(safetensors_bytes(detector.state_of(nets)))


def _no_data(monkeypatch) -> list[dict]:
    """Training without reading data or choosing thresholds; the records ``choose`` would write, appended."""
    written: list[dict] = []
    monkeypatch.setattr(training_detector, "training_digits", lambda root: (
        torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), torch.zeros(2, 28, 28, dtype=torch.uint8)))

    def choose(root, out_root, members, held, command="", nets=None) -> dict:
        if nets is not None:
            _save(out_root, nets)
        written.append({"members": members, "command": command, "reject_below": 0.5, "chosen_on": "",
                        "rejected_percent": {}})
        return written[-1]

    monkeypatch.setattr(training_detector, "choose", choose)
    monkeypatch.setattr(training_detector, "non_digit_pool", lambda: torch.zeros(4, 1, 28, 28))
    monkeypatch.setattr(rejection, "development_digits", lambda root: {})
    return written


def test_fine_tuning_starts_each_member_from_the_saved_one_of_its_seed_and_keeps_its_record(tmp_path, monkeypatch):
    saved = tmp_path / "saved"
    nets = _saved_pair(saved)
    _no_data(monkeypatch)
    record = training_detector.train("unread", tmp_path / "out", epochs=0, seeds=(7,), fine_tune=saved)
    assert record["members"][0]["fine_tuned_from"] == {"seed": 7, "epochs": 30}
    written = detector.members(load_file(str(detector.paths(tmp_path / "out")[0])))
    assert len(written) == 1
    assert all(torch.equal(written[0].state_dict()[k], v) for k, v in nets[1].state_dict().items())


def test_the_detectors_record_names_the_command_that_trained_it(tmp_path, monkeypatch) -> None:
    _saved_pair(tmp_path / "saved")
    written = _no_data(monkeypatch)
    args = ["--fine-tune", str(tmp_path / "saved"), "--seeds", "7", "--epochs", "0", "--out-dir", str(tmp_path / "o")]
    training_detector.main(args)
    assert written[-1]["command"] == "the first && python -m training.detector " + " ".join(args)  # its source's first
    training_detector.main(["--add", "--seeds", "9", "--epochs", "0", "--out-dir", str(tmp_path / "saved")])
    assert written[-1]["command"] == ("the first && python -m training.detector --add --seeds 9 --epochs 0"
                                      f" --out-dir {tmp_path / 'saved'}")  # the kept members' command first
    assert [m["seed"] for m in written[-1]["members"]] == [4, 7, 9]


def test_a_member_added_from_a_copy_of_the_kept_detector_names_their_shared_commands_once(tmp_path, monkeypatch):
    _saved_pair(tmp_path / "kept")
    written = _no_data(monkeypatch)
    training_detector.main(["--add", "--seeds", "9", "--epochs", "0", "--out-dir", str(tmp_path / "kept")])
    grown = tmp_path / "kept"  # now the first command, then seed 9's
    _saved_pair(tmp_path / "again")  # the kept pair again, to which seed 9 continued is added
    args = ["--add", "--seeds", "9", "--epochs", "0", "--fine-tune", str(grown), "--out-dir", str(tmp_path / "again")]
    detector.paths(grown)[1].write_text(json.dumps(written[-1]))  # the record that run would have written
    training_detector.main(args)
    assert written[-1]["command"] == (f"the first && python -m training.detector --add --seeds 9 --epochs 0 --out-dir"
                                      f" {grown} && python -m training.detector " + " ".join(args))
    assert training_detector.chained(["a"], ["b"]) == ["a", "b"]  # unrelated histories: both, in order


def test_comparing_detectors_names_a_folder_without_one_in_one_usage_error(tmp_path, capsys) -> None:
    from benchmarks import detector_candidates  # noqa: PLC0415

    with pytest.raises(SystemExit) as exit_:
        detector_candidates.main([str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"{tmp_path}/outputs/digit_detector.safetensors: no detector there" in err


def test_comparing_detectors_calls_the_committed_one_committed_and_a_candidate_by_its_folder(tmp_path) -> None:
    from benchmarks import detector_candidates  # noqa: PLC0415

    assert detector_candidates.label(REFERENCE_ROOT) == "committed"
    assert detector_candidates.label(tmp_path) == str(tmp_path)


def _tiny_training(monkeypatch) -> list[dict]:
    """Epochs of two steps of eight images, on no data; the records ``choose`` would write."""
    monkeypatch.setattr(training_detector, "BATCH", 8)
    monkeypatch.setattr(training_detector, "PER_EPOCH", 16)
    return _no_data(monkeypatch)


def _stop_after_first_epoch(monkeypatch) -> None:
    """Ctrl-C as soon as the first epoch's progress is written."""
    write = training_detector.atomic_write_bytes

    def write_then_stop(path, data):
        write(path, data)
        monkeypatch.setattr(training_detector, "atomic_write_bytes", write)
        raise KeyboardInterrupt

    monkeypatch.setattr(training_detector, "atomic_write_bytes", write_then_stop)


def test_a_member_interrupted_and_resumed_ends_with_the_weights_of_one_never_interrupted(tmp_path, monkeypatch):
    _tiny_training(monkeypatch)
    images, labels = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    whole, _ = training_detector.train_member(images, labels, 3, seed=5, partial=tmp_path / "whole.pt")
    _stop_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        training_detector.train_member(images, labels, 3, seed=5, partial=tmp_path / "cut.pt")
    state = torch.load(tmp_path / "cut.pt", weights_only=True)
    assert state["epoch"] == 1
    resumed, record = training_detector.train_member(images, labels, 3, seed=5, partial=tmp_path / "cut.pt",
                                                     resume=state)
    assert record["epochs"] == 3
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())


def test_an_interrupted_detector_training_says_how_to_continue_and_resume_finishes_it(tmp_path, monkeypatch,
                                                                                       capsys) -> None:
    written = _tiny_training(monkeypatch)
    argv = ["--seeds", "7", "--epochs", "2", "--out-dir", str(tmp_path)]
    _stop_after_first_epoch(monkeypatch)
    with pytest.raises(SystemExit) as stop:
        training_detector.main(argv)
    err = capsys.readouterr().err
    partial = training_detector.partial_path(tmp_path, 7)
    assert stop.value.code == 130 and err.count("\n") == 1
    assert f"{partial}; continue with: python -m training.detector {' '.join(argv)} --resume" in err
    with pytest.raises(SystemExit) as again:  # without --resume it would be overwritten
        training_detector.main(argv)
    assert again.value.code == 2 and "continue it with --resume, or delete it" in capsys.readouterr().err
    training_detector.main([*argv, "--resume"])
    assert "continuing after epoch 1/2" in capsys.readouterr().out
    assert written[-1]["command"] == f"python -m training.detector {' '.join(argv)}"  # no --resume in the recipe
    assert written[-1]["members"][0]["epochs"] == 2 and not partial.exists()
    assert len(detector.members(load_file(str(detector.paths(tmp_path)[0])))) == 1


@pytest.mark.parametrize(("extra", "named"), [
    (["--epochs", "3", "--resume"], "was trained otherwise: epochs (2 there, 3 here)"),
    (["--width", "16", "--resume"], "width (32 there, 16 here)"),
    (["--seeds", "8", "--resume"], "no interrupted training of seed 8 under"),
    (["--resume", "--choose-only"], "--choose-only trains nothing"),
])
def test_resuming_what_cannot_be_continued_is_one_usage_error(tmp_path, monkeypatch, capsys, extra, named) -> None:
    _tiny_training(monkeypatch)
    _stop_after_first_epoch(monkeypatch)
    with pytest.raises(SystemExit):
        training_detector.main(["--seeds", "7", "--epochs", "2", "--out-dir", str(tmp_path)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        training_detector.main(["--seeds", "7", "--epochs", "2", "--out-dir", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and named in err and "Traceback" not in err


def test_a_grid_headed_training_resumed_without_its_head_is_one_usage_error(tmp_path, monkeypatch, capsys) -> None:
    _tiny_training(monkeypatch)
    _stop_after_first_epoch(monkeypatch)
    argv = ["--seeds", "7", "--epochs", "2", "--out-dir", str(tmp_path)]
    with pytest.raises(SystemExit):
        training_detector.main([*argv, "--head", "grid"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # the head is in the recipe only where it is not the default
        training_detector.main([*argv, "--resume"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "head (grid there, None here)" in err and "Traceback" not in err


def test_a_damaged_interrupted_training_is_named_in_one_usage_error(tmp_path, capsys) -> None:
    partial = training_detector.partial_path(tmp_path, 7)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as stop:
        training_detector.main(["--seeds", "7", "--out-dir", str(tmp_path), "--resume"])
    assert stop.value.code == 2 and f"{partial}: not an interrupted detector training" in capsys.readouterr().err


def test_a_detector_training_that_cannot_keep_its_progress_names_the_file_and_exits_4(tmp_path, monkeypatch,
                                                                                      capsys) -> None:
    _tiny_training(monkeypatch)
    training_detector.partial_path(tmp_path, 7).mkdir(parents=True)  # a folder where the progress goes
    with pytest.raises(SystemExit) as stop:
        training_detector.main(["--seeds", "7", "--epochs", "2", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 4 and err.count("\n") == 1
    assert f"cannot write {training_detector.partial_path(tmp_path, 7)}: a directory is in the way" in err


def test_the_gate_rules_benchmark_measures_the_served_score_as_its_first_rule() -> None:
    from analysis.evaluation import probabilities  # noqa: PLC0415
    from benchmarks import gate_rules  # noqa: PLC0415

    found, v3 = detector.load(), zoo.load("3", REFERENCE_ROOT, calibrated=True)
    images = nondigits.letters("development")[:16].float() / 255
    seen = gate_rules.seen(found, v3, images)
    served = rejection.scores(probabilities(v3, images), found.digit_probability(images))
    first, *others = gate_rules.RULES.values()
    torch.testing.assert_close(first(seen), served)
    assert seen.members.shape == seen.shifted.shape == seen.turned.shape == (len(found.nets), 16)
    assert not torch.equal(seen.shifted, seen.members) and not torch.equal(seen.turned, seen.members)
    assert all(rule(seen).shape == (16,) for rule in others)
    torch.testing.assert_close(seen.named.sum(2), seen.members)  # each digit's share of a member's digit probability


def _bitmap_page(cells: torch.Tensor, path: Path) -> Path:
    """(16, 16) cells, 1 for ink, handed over as SEMEION's scans are: dark on white, each cell 8 pixels square."""
    pixels = ((1 - cells) * 255).byte().numpy()
    Image.fromarray(pixels, mode="L").resize((128, 128), Image.Resampling.NEAREST).save(path)
    return path


def test_a_bitmap_stretched_to_its_frame_is_told_from_grey_ink_and_ink_framed_by_paper() -> None:
    from digits.prepare import stretched_bitmap  # noqa: PLC0415

    block = torch.ones(16, 16)
    assert stretched_bitmap(block)
    edges_lost = torch.zeros(16, 16)
    edges_lost[1:16, 0:14] = 1  # thresholding left a row and two columns of the stretched box blank
    assert stretched_bitmap(edges_lost)
    framed = torch.zeros(16, 16)
    framed[3:13, 5:11] = 1
    grey = block.clone()
    grey[:, 7] = 0.5
    assert not stretched_bitmap(framed) and not stretched_bitmap(grey) and not stretched_bitmap(torch.zeros(16, 16))


def test_a_stretched_bitmap_is_judged_at_its_most_digit_like_width() -> None:
    from digits.prepare import ASPECTS, aspect_views, centre  # noqa: PLC0415

    found = detector.load()
    block = centre(torch.ones(64, 64))  # a 1 stretched to fill its frame is a solid block
    views = aspect_views(block[None])
    assert torch.equal(views[0, 0], block)
    widths = [int((view[0] > 0).any(0).sum()) for view in views]
    assert widths == [round(20 * aspect) for aspect in ASPECTS]  # narrowed, each 20 pixels tall as prepared
    as_stored = found.digit_probability(block[None])
    judged = found.digit_probability(block[None], torch.tensor([True]))
    torch.testing.assert_close(judged, torch.stack([found.digit_probability(view) for view in views]).amax(0))
    assert float(judged) > 100 * float(as_stored)  # a bar is more like a 1 than a block is like any digit
    several = torch.stack([block, block])
    torch.testing.assert_close(found.digit_probability(several, torch.tensor([False, True])),
                               torch.cat([as_stored, judged]))


def test_predict_judges_a_stretched_bitmap_at_several_widths_and_other_ink_as_it_is(tmp_path) -> None:
    v3, found = zoo.load("3", REFERENCE_ROOT, calibrated=True), detector.load()
    slanted = torch.zeros(16, 16)
    for row in range(16):  # a slanted 1 stretched to fill 16 x 16: a broad band from corner to corner
        slanted[row, max(0, 9 - row * 9 // 15): min(16, 16 - row * 9 // 15)] = 1
    framed = torch.zeros(16, 16)
    framed[2:14, 2:14] = slanted[2:14, 2:14]  # the same ink with paper around it: not stretched to a frame
    stretched, other = _bitmap_page(slanted, tmp_path / "stretched.png"), _bitmap_page(framed, tmp_path / "framed.png")
    said = predict.predict_images(v3, [stretched, other])
    for s, path, marked in zip(said, (stretched, other), (True, False)):
        seen = predict.read_input(path)[None]
        expected = found.digit_probability(seen, torch.tensor([marked]))
        assert s.digit_probability == pytest.approx(float(expected), abs=1e-3), path
    assert said[0].digit_probability > found.digit_probability(predict.read_input(stretched)[None])


def test_letter_classes_label_each_training_letter_apart_and_everything_else_not_a_digit() -> None:
    per_font = len(nondigits.LETTERS)
    letters = 3 * per_font  # a pool whose first three fonts' letters come first
    index = torch.tensor([0, 1, per_font, letters - 1, letters, -1])  # ..., the first drawn kind, a letter turned
    not_a_digit = detector.architecture.NOT_A_DIGIT
    assert training_detector.non_digit_classes(index, letters).tolist() == [
        not_a_digit + 1, not_a_digit + 2, not_a_digit + 1, not_a_digit + per_font, not_a_digit, not_a_digit]
    assert (training_detector.non_digit_classes(index, 0) == not_a_digit).all()  # without letter classes
    things = torch.ones(4, 1, 28, 28)
    _, classes = training_detector.pick_against(400, torch.Generator().manual_seed(0), torch.rand(letters + 10, 1, 28, 28),
                                                [(things, 0.5)], letters)
    assert (classes >= not_a_digit).all() and (classes > not_a_digit).any()  # never a digit; letters apart


def test_a_member_widened_to_letter_classes_starts_with_the_digit_probability_it_had_and_loads_as_such() -> None:
    torch.manual_seed(0)
    net = detector.build(width=8).eval()
    wide = training_detector.with_letter_classes(net).eval()
    assert detector.outputs_of(wide.state_dict()) == detector.architecture.NOT_A_DIGIT + 1 + len(nondigits.LETTERS)
    letters = nondigits.letters("development")[:20].float() / 255
    before = detector.Detector([net], 0.5).digit_probability(letters)
    assert torch.allclose(detector.Detector([wide], 0.5).digit_probability(letters), before, atol=1e-6)
    again = detector.members(detector.state_of([net, wide]))  # a file may hold members of either head
    assert [detector.outputs_of(m.state_dict()) for m in again] == [11, detector.outputs_of(wide.state_dict())]
    assert torch.allclose(detector.Detector(again, 0.5).digit_probability(letters), before, atol=1e-6)


def test_a_member_trained_with_letter_classes_records_it_and_resumes_only_so(tmp_path, monkeypatch) -> None:
    _tiny_training(monkeypatch)
    images, labels = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    net, record = training_detector.train_member(images, labels, 1, seed=5, width=8, letter_classes=True,
                                                 partial=tmp_path / "p.pt")
    assert record["letter_classes"] is True
    assert detector.outputs_of(net.state_dict()) == detector.architecture.NOT_A_DIGIT + 1 + len(nondigits.LETTERS)
    assert torch.load(tmp_path / "p.pt", weights_only=True)["recipe"]["letter_classes"] is True


def test_members_of_either_head_load_from_one_file_each_with_its_own_head_and_the_same_answers() -> None:
    torch.manual_seed(0)
    nets = [detector.build(width=8).eval(), detector.build(width=8, head="grid").eval()]
    assert [detector.head_of(net.state_dict()) for net in nets] == ["average", "grid"]
    again = detector.members(detector.state_of(nets))
    assert [detector.head_of(m.state_dict()) for m in again] == ["average", "grid"]
    assert [len(m.layers) for m in again] == [len(net.layers) for net in nets] == [24, 26]
    letters = nondigits.letters("development")[:20].float() / 255
    for net, loaded in zip(nets, again):
        assert torch.equal(detector.Detector([loaded], 0.5).digit_probability(letters),
                           detector.Detector([net], 0.5).digit_probability(letters))


def test_a_member_trained_with_the_grid_head_records_it_and_resumes_only_so(tmp_path, monkeypatch, capsys) -> None:
    _tiny_training(monkeypatch)
    images, labels = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    net, record = training_detector.train_member(images, labels, 1, seed=5, width=8, head="grid",
                                                 partial=tmp_path / "p.pt")
    assert record["head"] == "grid" and detector.head_of(net.state_dict()) == "grid"
    assert torch.load(tmp_path / "p.pt", weights_only=True)["recipe"]["head"] == "grid"
    _, plain = training_detector.train_member(images, labels, 1, seed=5, width=8)
    assert "head" not in plain  # the records of average-headed members stay as they were
    with pytest.raises(SystemExit) as exit_:
        training_detector.main(["--head", "grid", "--fine-tune", "."])
    assert exit_.value.code == 2 and "--fine-tune continues the saved members with theirs" in capsys.readouterr().err


def test_letters_lie_farther_than_digits_from_every_digit_in_the_detector_features(mnist_root) -> None:
    from analysis.feature_distance import FeatureDistance, discounted  # noqa: PLC0415

    nets = detector.load().nets
    splits = data_utils.load_mnist(mnist_root)
    train, test = splits["train"], splits["test"]
    fitted = FeatureDistance.fit(nets, train.images[:2000].float() / 255, train.labels[:2000])
    digits = fitted.distance(nets, test.images[:300].float() / 255)
    letters = fitted.distance(nets, nondigits.letters("development")[:300].float() / 255)
    assert digits.shape == (300,) and bool((digits >= 0).all())
    assert float(letters.median()) > 2 * float(digits.median())  # unlike every digit it was fitted on
    stretched = torch.ones(50, dtype=torch.bool)  # judged at several widths, the nearest kept: never farther
    assert bool((fitted.distance(nets, test.images[:50].float() / 255, stretched) <= digits[:50] + 1e-5).all())
    score = torch.rand(300)
    assert torch.equal(discounted(score, digits, 1.0, 0.0), score)  # weight 0: the score as served
    assert bool((discounted(score, letters, float(digits.median()), 1.0) < score).all())


def test_the_record_names_how_the_members_join_and_a_threshold_chosen_with_one_join_names_it(tmp_path: Path) -> None:
    weights, record = detector.paths(REFERENCE_ROOT)
    (tmp_path / "outputs").mkdir()
    shutil.copy(weights, tmp_path / "outputs")
    saved = json.loads(record.read_text())
    (tmp_path / "outputs" / record.name).write_text(json.dumps({**saved, "join": "log-odds"}))
    served, other = detector.load(), detector.load(tmp_path)
    images = nondigits.letters("development")[:32].float() / 255
    each = torch.stack([detector.Detector([net], 0.0).digit_probability(images) for net in served.nets])
    torch.testing.assert_close(served.digit_probability(images), each.mean(0))  # no join named: the mean
    torch.testing.assert_close(other.digit_probability(images), torch.logit(each, eps=1e-7).mean(0).sigmoid())
    assert served.join == "mean" and other.join == "log-odds" and other.fingerprint != served.fingerprint
    (tmp_path / "outputs" / record.name).write_text(json.dumps({**saved, "join": "least"}))
    detector._load.cache_clear()
    torch.testing.assert_close(detector.load(tmp_path).digit_probability(images), each.amin(0))
    (tmp_path / "outputs" / record.name).write_text(json.dumps({**saved, "join": "median"}))
    detector._load.cache_clear()
    with pytest.raises(detector.DetectorError, match="join 'median' is none of mean, log-odds, least"):
        detector.load(tmp_path)


def test_a_detector_training_without_its_development_digits_says_so_before_the_first_epoch(tmp_path, monkeypatch,
                                                                                          capsys) -> None:
    monkeypatch.setattr(training_detector, "training_digits", lambda root: pytest.fail("the training began"))
    with pytest.raises(SystemExit) as stop:  # tmp_path holds none of the data
        training_detector.main(["--seeds", "7", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert f"error: {tmp_path / 'OPTDIGITS' / 'optdigits-train.csv'}: cannot be read" in err.strip().splitlines()[-1]
    assert not training_detector.partial_path(tmp_path / "out", 7).exists()


def test_mirrored_digits_are_the_training_digits_whose_mirror_is_no_digit_flipped_left_to_right() -> None:
    images, labels = torch.rand(20, 1, 28, 28), torch.arange(20) % 10
    pool = training_detector.mirrored_pool(images, labels)
    kept = [i for i in range(20) if int(labels[i]) not in (0, 1, 8)]
    assert torch.equal(pool, images[kept].flip(-1))


@pytest.mark.parametrize("kind", ["mirrored", "silhouettes"])
def test_a_member_trained_against_an_extra_kind_records_its_share_and_resumes_only_so(tmp_path, monkeypatch,
                                                                                      kind) -> None:
    _tiny_training(monkeypatch)
    monkeypatch.setattr(training_detector, "SILHOUETTES_DRAWN", 16)
    images, labels = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    _, record = training_detector.train_member(images, labels, 1, seed=5, width=8, partial=tmp_path / "p.pt",
                                               shares={kind: 0.5})
    assert record[kind] == 0.5
    assert torch.load(tmp_path / "p.pt", weights_only=True)["recipe"][kind] == 0.5
    _, plain = training_detector.train_member(images, labels, 1, seed=5, width=8)
    assert kind not in plain  # the records of members trained without them stay as they were


def test_the_extra_kinds_shares_sum_to_at_most_one_or_the_command_says_so(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        training_detector.main(["--objects", "0.5", "--mirrored", "0.6"])
    assert exit_.value.code == 2 and "--objects 0.5, --mirrored 0.6: shares of the same draws" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no extra kind of non-digit glitter"):
        training_detector.shares_of({"glitter": 0.1})


def test_drawn_silhouettes_are_light_blocks_on_dark_the_same_from_the_same_stream_and_none_like_a_one() -> None:
    drawn = nondigits.drawn(nondigits.SILHOUETTES, 40, nondigits.TRAINING_SEED)
    assert drawn.shape == (40, 28, 28) and torch.equal(drawn, nondigits.drawn.__wrapped__(
        nondigits.SILHOUETTES, 40, nondigits.TRAINING_SEED))  # drawn again, uncached: the same images
    ink = drawn > 127
    assert not any(nondigits.like_a_one(d.float() / 255) for d in drawn)
    assert float(ink.float().mean((1, 2)).median()) > 0.2  # solid: a stroke digit inks far less of its frame
    assert not torch.equal(drawn, nondigits.drawn.__wrapped__(nondigits.SILHOUETTES, 40, nondigits.DEVELOPMENT_SEED))
