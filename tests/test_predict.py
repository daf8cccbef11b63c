"""--predict and --predict-csv: new digits in any size and polarity, Kaggle's CSV, and bad inputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

import data_utils
import main
import model_strategy
from analysis import evaluation
from deploy import predict
from digits import prepare


def _draw_seven(path: Path, size: int = 120, dark_on_light: bool = True) -> Path:
    """A hand-drawn-looking 7: a top bar and a slanted stroke."""
    ink, paper = (20, 235) if dark_on_light else (235, 20)
    image = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(image)
    draw.line([(0.25 * size, 0.2 * size), (0.75 * size, 0.2 * size)], fill=ink, width=size // 10)
    draw.line([(0.75 * size, 0.2 * size), (0.42 * size, 0.85 * size)], fill=ink, width=size // 10)
    image.save(path)
    return path


def test_mnistify_centres_the_digit_in_a_20_pixel_box_and_inverts_light_paper() -> None:
    gray = torch.ones(90, 60)           # white paper
    gray[10:70, 20:30] = 0.0            # a dark vertical bar: a "1"
    digit = prepare.mnistify(gray)
    assert digit.shape == (28, 28) and digit.max() > 0.9 and digit[0].max() == 0  # light on black
    rows = (digit > 0.2).any(1).nonzero().flatten()
    assert rows[-1] - rows[0] + 1 == 20
    ys = torch.arange(28, dtype=torch.float32)
    cy = float((digit.sum(1) * ys).sum() / digit.sum())
    cx = float((digit.sum(0) * ys).sum() / digit.sum())
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1


def _ring(side: int, width: float, blur: int = 1) -> torch.Tensor:
    """A "0" drawn to touch its image's edge: ink coverage of a ring, its outer circle the image's inscribed
    one, edges softened by a ``blur``-pixel box filter as a scanner's optics soften them."""
    ys, xs = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
    radius = ((ys - side / 2) ** 2 + (xs - side / 2) ** 2).sqrt()
    ink = ((radius <= side / 2) & (radius >= side / 2 - width)).float()
    pad = blur // 2
    return torch.nn.functional.avg_pool2d(ink[None, None], blur, stride=1, padding=pad, count_include_pad=False)[0, 0]


def test_dark_ink_covering_more_than_half_of_a_tight_crop_is_still_read_as_ink() -> None:
    gray = torch.ones(128, 128)  # a thick "T" stretched to fill its box, as SEMEION stores digits
    gray[:40] = 0.0
    gray[:, 40:88] = 0.0
    assert 0.55 < float((gray < 0.5).float().mean()) < 0.6  # its edge is half ink, half paper
    digit = prepare.mnistify(gray)
    rows, cols = (digit > 0).any(1).nonzero().flatten(), (digit > 0).any(0).nonzero().flatten()
    assert len(rows) == len(cols) == 20  # the whole image is the ink's box
    top, left = int(rows[0]), int(cols[0])
    assert digit[top + 12, left + 3] == 0 and digit[top + 12, left + 10] > 0.9  # beside the stem paper, the stem ink


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_a_tight_crop_whose_ink_covers_most_of_it_is_read_by_the_shade_of_its_edge(dark_on_light) -> None:
    ring = _ring(64, 18)  # light or dark ink over 63% of the image, touching its edge at four short arcs
    assert float((ring > 0.5).float().mean()) > 0.6
    digit = prepare.mnistify(1 - ring if dark_on_light else ring)
    assert digit[14, 14] == 0 and digit[14, 4] > 0.9  # the hole is paper, the ring ink


def test_a_light_digit_stretched_past_its_box_is_read_by_its_pieces_when_its_edge_is_split() -> None:
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    radius = ((ys - 32) ** 2 + (xs - 32) ** 2).sqrt()
    zero = ((radius <= 35.2) & (radius >= 20)).float()  # a "0" cut by all four sides: its ground 4 corners and a hole
    edge = torch.cat([zero[0], zero[-1], zero[1:-1, 0], zero[1:-1, -1]])
    assert 0.4 < float(edge.mean()) < 0.6 and float(zero.mean()) > 0.5  # no shade owns the edge; light covers most
    digit = prepare.mnistify(zero)  # light on dark
    assert digit[14, 14] == 0 and digit[14, 5] > 0.9  # the hole is ground, the ring ink


@pytest.mark.parametrize("side", [16, 28])
def test_a_small_grey_digit_cropped_tight_is_found(side) -> None:
    ring = _ring(side, side / 4, blur=3)  # grey at the edges of its strokes: ink on more than half of the image
    assert float((ring > 0).float().mean()) > 0.5
    digit = prepare.mnistify(1 - ring)
    assert digit[14, 14] == 0 and digit[14, 5] > 0.9


def _seven_on_a_page(tmp_path: Path, paper: int) -> Image.Image:
    """The drawn 7 in the middle of a 200 x 200 page of shade ``paper``: its ink in rows and columns 50-150."""
    with Image.open(_draw_seven(tmp_path / "seven.png", size=120)) as drawn:
        page = Image.new("L", (200, 200), paper)
        page.paste(drawn.crop((10, 10, 110, 110)), (50, 50))
    return page


def _only_the_seven_is_read(path: Path) -> None:
    ink = prepare.clean(prepare.read_gray(path))
    rows, cols = (ink > 0).any(1).nonzero().flatten(), (ink > 0).any(0).nonzero().flatten()
    assert 50 <= int(rows[0]) and int(rows[-1]) < 150 and 50 <= int(cols[0]) and int(cols[-1]) < 150
    [prediction] = predict.predict_images(model_strategy.load_trained("3"), [path])
    assert prediction.digit == 7


@pytest.mark.parametrize("squared", [False, True])
def test_the_printed_lines_of_ruled_and_squared_paper_are_not_taken_for_ink(tmp_path, squared) -> None:
    page = _seven_on_a_page(tmp_path, 255)
    for step in range(12, 200, 25):  # grey lines across the page, through the digit too
        ImageDraw.Draw(page).line([(0, step), (199, step)], fill=150, width=2)
        if squared:
            ImageDraw.Draw(page).line([(step, 0), (step, 199)], fill=150, width=2)
    page.save(tmp_path / "lined.png")
    _only_the_seven_is_read(tmp_path / "lined.png")


def test_a_bar_across_a_tight_crop_is_kept_as_part_of_the_digit() -> None:
    four = torch.zeros(64, 64)  # a "4" stretched to its box: a bar across it, joined to strokes above and below
    four[36:42] = 1.0
    four[:, 44:50] = 1.0
    for row in range(36):
        four[row, max(0, 36 - row - 3): 36 - row + 3] = 1.0
    assert float(four[38].mean()) == 1.0 and float(four[:, 46].mean()) == 1.0  # the bar and the stem span the image
    assert torch.equal(prepare.without_printed_lines(four), four)


def test_a_photo_with_the_desk_showing_along_two_edges_is_read_from_the_sheet(tmp_path) -> None:
    photo = _seven_on_a_page(tmp_path, 215)  # the sheet, a little grey
    ImageDraw.Draw(photo).rectangle([0, 0, 199, 19], fill=40)  # the desk along the top and the right
    ImageDraw.Draw(photo).rectangle([175, 0, 199, 199], fill=40)
    photo.save(tmp_path / "desk.png")
    _only_the_seven_is_read(tmp_path / "desk.png")


def test_a_part_of_a_digit_at_the_edge_of_a_tight_crop_is_kept() -> None:
    five = torch.zeros(64, 48)  # a "5" whose top bar, written apart, touches the image's top edge
    five[0:6, 8:44] = 1.0
    five[10:36, 8:14] = 1.0
    five[30:36, 8:40] = 1.0
    five[30:58, 34:40] = 1.0
    five[52:58, 8:40] = 1.0
    assert torch.equal(prepare.without_surroundings(five), five)


def test_a_blank_image_is_refused() -> None:
    with pytest.raises(ValueError, match="no digit"):
        prepare.mnistify(torch.ones(28, 28))


def test_a_dangling_or_looping_symbolic_link_is_named_as_such_a_missing_file_as_missing(tmp_path) -> None:
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    for name in ("dangling.png", "a.png"):
        with pytest.raises(ValueError, match="symbolic link that leads to no file"):
            prepare.read_gray(tmp_path / name)
    with pytest.raises(ValueError, match="^no such file$"):
        prepare.read_gray(tmp_path / "gone.png")


@pytest.fixture
def trained_out(synthetic_root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), "--no-verify", "--model", "fc",
                      "--epochs", "1", "--device", "cpu"]) == 0
    return out


def test_predict_prints_a_digit_and_probability_and_inverted_input_gives_the_same(tmp_path, capsys):
    dark = _draw_seven(tmp_path / "dark.png", dark_on_light=True)
    light = _draw_seven(tmp_path / "light.jpg", size=64, dark_on_light=False)
    assert main.main(["--model", "3", "--predict", str(dark), str(light)]) == 0  # the committed V3
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    answers = []
    for line in lines:  # "<file>: 7 (99.9%) | 1 (0.1%) | 9 (0.0%)": the digit first, then the runners-up
        top = [(int(d), float(p.rstrip("%)"))) for d, p in (part.split(" (") for part in line.rsplit(": ", 1)[1].split(" | "))]
        assert len(top) == 3 and len({d for d, _ in top}) == 3 and all(0 <= d <= 9 and 0 <= p <= 100 for d, p in top)
        assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
        answers.append(top[0][0])
    assert answers == [7, 7]


def test_predict_json_prints_one_object_per_input_in_order_unreadable_ones_included(tmp_path, capsys):
    import json

    seven, blank = _draw_seven(tmp_path / "seven.png"), tmp_path / "blank.png"
    Image.new("L", (40, 40), 255).save(blank)
    code = main.main(["--model", "3", "--predict", str(blank), str(seven), str(tmp_path / "gone.png"), "--format", "json"])
    out, err = capsys.readouterr()
    objects = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [o["file"] for o in objects] == [str(blank), str(seven), str(tmp_path / "gone.png")]
    assert all(o.keys() >= {"file", "number", "confidence", "top", "verdict", "reason"} for o in objects)
    said = objects[1]
    assert said["verdict"] == "digit" and said["number"] == "7" and said["reason"] is None
    assert said["top"][0] == [7, said["confidence"]] and len(said["top"]) == 3
    assert abs(sum(p for _, p in said["top"]) - 1) < 0.05 and said["confidence"] > 0.5
    assert objects[0]["verdict"] == "not a digit" and objects[0]["number"] is None and "blank" in objects[0]["reason"]
    assert objects[2]["verdict"] == "unreadable" and objects[2]["reason"] == "no such file"
    assert err.count("main.py: error:") == 1 and "Traceback" not in err  # one line per bad input, as in text mode


def test_format_json_is_refused_without_predict(capsys):
    assert main.main(["--model", "3", "--list-models", "--format", "json"]) == 2
    assert "argument --format: works with --predict only" in capsys.readouterr().err


def test_the_python_api_gives_the_same_objects(tmp_path):
    import zoo

    [p] = zoo.predict("3", [str(_draw_seven(tmp_path / "seven.png"))])
    record = p.to_dict()
    assert record["number"] == "7" and record["verdict"] == "digit" and record["top"][0][0] == 7
    assert p.line().startswith(f"{tmp_path / 'seven.png'}: 7 (")


def test_committed_v3_reads_a_drawn_seven(tmp_path: Path) -> None:
    model = model_strategy.load_trained("3")
    [prediction] = predict.predict_images(model, [_draw_seven(tmp_path / "seven.png")])
    assert prediction.digit == 7 and 0.5 < prediction.probability <= 1.0


def test_mnist_digits_redrawn_large_and_inverted_keep_their_prediction(mnist_root: Path, tmp_path: Path) -> None:
    model = model_strategy.load_trained("3")
    test = data_utils.load_mnist(mnist_root)["test"]
    originals = test.images[:40]
    direct, _ = evaluation.classify(model, originals.float() / 255.0)
    paths = []
    for i, image in enumerate(originals):
        big = Image.fromarray((255 - image).numpy(), mode="L").resize((112, 112), Image.Resampling.BILINEAR)
        paths.append(tmp_path / f"{i}.png")
        big.save(paths[-1])
    redrawn = [p.digit for p in predict.predict_images(model, paths)]
    agree = sum(int(a == b) for a, b in zip(direct.tolist(), redrawn))
    assert agree >= 37, f"only {agree}/40 predictions survived redrawing"


def test_predict_csv_writes_one_submission_row_per_input_row(trained_out, tmp_path, capsys) -> None:
    rows = torch.randint(0, 256, (5, 784)).tolist()
    csv_path = tmp_path / "test.csv"
    csv_path.write_text(",".join(f"pixel{i}" for i in range(784)) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    assert main.main(["--model", "fc", "--out-dir", str(trained_out), "--predict-csv", str(csv_path)]) == 0
    lines = (trained_out / "outputs" / "mnist_model_fc_submission.csv").read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 6
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3, 4, 5]
    assert all(0 <= int(line.split(",")[1]) <= 9 for line in lines[1:])


def test_labelled_csv_reports_accuracy(trained_out, tmp_path, capsys) -> None:
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + "3," + ",".join(["0"] * 784) + "\n")
    assert main.main(["--model", "fc", "--out-dir", str(trained_out), "--predict-csv", str(csv_path)]) == 0
    assert "accuracy on its labels" in capsys.readouterr().out


def test_bad_images_get_one_line_each_the_good_ones_are_still_predicted_and_the_exit_is_1(trained_out, tmp_path,
                                                                                            capsys) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    good = _draw_seven(tmp_path / "seven.png")
    code = main.main(["--model", "fc", "--out-dir", str(trained_out), "--predict", str(broken), str(good),
                      str(tmp_path / "missing.png"), str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.png: not a readable image" in captured.err and "missing.png: no such file" in captured.err
    assert f"{tmp_path}: is a directory" in captured.err and "Traceback" not in captured.err
    assert [line.split(":")[0] for line in captured.out.splitlines()] == [str(good)]


def test_bad_csv_rows_are_named_the_rest_is_written_with_their_ids_and_a_trailing_blank_line_is_fine(
        trained_out, tmp_path, capsys) -> None:
    csv_path = tmp_path / "bad.csv"
    header = ",".join(f"pixel{i}" for i in range(784))
    rows = [",".join(["0"] * 784), ",".join(["1"] * 783), ",".join(["300"] * 784), ",".join(["0"] * 784)]
    csv_path.write_text(header + "\n" + "\n".join(rows) + "\n\n")
    code = main.main(["--model", "fc", "--out-dir", str(trained_out), "--predict-csv", str(csv_path)])
    err = capsys.readouterr().err
    assert code == 1 and "bad.csv line 3" in err and "bad.csv line 4" in err and "( pixels" not in err
    submission = (trained_out / "outputs" / "mnist_model_fc_submission.csv").read_text().splitlines()
    assert submission[0] == "ImageId,Label" and [int(r.split(",")[0]) for r in submission[1:]] == [1, 4]
    csv_path.write_text(header + "\n" + rows[0] + "\n\n")
    assert main.main(["--model", "fc", "--out-dir", str(trained_out), "--predict-csv", str(csv_path)]) == 0


def test_an_mnist_digit_saved_as_a_png_is_read_exactly_as_the_data_set_gives_it(mnist_root: Path, tmp_path: Path) -> None:
    test = data_utils.load_mnist(mnist_root)["test"]
    for i, image in enumerate(test.images[:20]):
        light, dark = tmp_path / f"{i}.png", tmp_path / f"{i}-inverted.png"
        Image.fromarray(image.numpy(), mode="L").save(light)
        Image.fromarray((255 - image).numpy(), mode="L").save(dark)
        expected = image.float() / 255.0
        assert torch.equal(predict.read_input(light), expected)
        assert torch.allclose(predict.read_input(dark), expected, atol=1e-6)


def test_a_28_pixel_image_not_in_mnist_form_is_still_prepared(mnist_root: Path) -> None:
    digit = data_utils.load_mnist(mnist_root)["test"].images[0].float() / 255.0
    shifted = torch.roll(digit, shifts=(3, -2), dims=(0, 1))  # off centre: not MNIST's form
    assert prepare.in_mnist_form(shifted) is None
    assert prepare.in_mnist_form(prepare.mnistify(shifted)) is not None  # re-centred by mass
    small = torch.nn.functional.interpolate(digit[None, None], scale_factor=0.5, mode="bilinear")[0, 0]
    framed = torch.zeros(28, 28)
    framed[7:21, 7:21] = small  # a digit 10 pixels tall: prepared to MNIST's 20
    assert prepare.in_mnist_form(framed) is None
    assert prepare.in_mnist_form(prepare.mnistify(framed)) is not None
    assert prepare.in_mnist_form(torch.rand(28, 28)) is None  # noise has no exact black ground
