"""The README's Python snippets run as a newcomer would paste them, and say what the README says they do."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from core import artifacts
from tests.conftest import ROOT


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_shows_the_python_api_in_three_snippets_and_no_more_than_250_lines() -> None:
    assert len(snippets()) == 3
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def _anchors(document: Path) -> set[str]:
    """The anchors a renderer such as GitHub gives a Markdown file's headings: lower case, punctuation but hyphens
    dropped, spaces as hyphens, a repeated heading numbered."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", document.read_text(), flags=re.S), re.M):
        base = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        slug, repeat = base, 0
        while slug in found:
            repeat += 1
            slug = f"{base}-{repeat}"
        found.add(slug)
    return found


def test_every_link_between_the_readme_and_the_docs_reaches_a_file_and_its_heading() -> None:
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for document in documents:
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", document.read_text(), flags=re.S)):
            if re.match(r"[a-z]+:", target):  # a web address or mailto: not checked offline
                continue
            path, _, anchor = target.partition("#")
            place = (document.parent / path) if path else document
            if not place.exists() or (anchor and place.suffix == ".md" and anchor not in _anchors(place)):
                broken.append(f"{document.name}: {target}")
    assert len(documents) > 10 and not broken, broken


def test_the_readme_snippets_run_and_print_what_they_promise(mnist_root, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_root))
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")  # "your runs" start empty, away from the repository
    monkeypatch.chdir(tmp_path)  # files a snippet writes (seven.png) land here
    printed = []
    for code in snippets():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
        printed.append(out.getvalue())
    evaluated, predicted, trained = printed
    assert "V3: 99.49% on 10,000 test digits" in evaluated  # the committed reference, as the results table says
    assert re.search(r"^seven\.png: 7 \(\d+\.\d%\)$", predicted, re.M) and re.search(r"^image 1: 7 ", predicted, re.M)
    assert re.search(r"^\d+\.\d+ % after 1 epoch$", trained.strip(), re.M)
    (run,) = (tmp_path / "runs" / "mnist_model_3").iterdir()  # the snippet's run, in a folder of its own
    assert (run / "outputs" / "mnist_model_3_params.pth").is_file()
    assert not (ROOT / "seven.png").exists()


def test_predict_names_every_unreadable_input_and_reads_an_n_by_h_by_w_stack(tmp_path) -> None:
    import torch

    import zoo
    from deploy.predict import PredictionInputError

    with pytest.raises(PredictionInputError, match=r"missing\.png: no such file") as caught:
        zoo.predict("3", [str(tmp_path / "missing.png"), torch.zeros(28, 28)])
    assert "image 1" not in str(caught.value)  # an empty image is an answer: not a digit
    [blank] = zoo.predict("3", torch.zeros(28, 28))
    assert blank.verdict == "not a digit" and blank.number is None
    digits = torch.zeros(2, 28, 28)
    digits[:, 4:24, 13:15] = 1.0  # two vertical strokes: ones
    assert [p.digit for p in zoo.predict("3", digits)] == [1, 1]
