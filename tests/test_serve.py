"""The web app's endpoints without a browser (Starlette's test client), and ``main.py --serve`` as a process."""
from __future__ import annotations

import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from starlette.testclient import TestClient

import main
import model_strategy
import zoo
from core import artifacts
from core.artifacts import REFERENCE_ROOT, ArtifactPaths
from web import app as web_app
from web import server

ROOT = Path(__file__).resolve().parents[1]
KEYS = model_strategy.available_models()


def png(draw, size: tuple[int, int] = (200, 200), mode: str = "L") -> bytes:
    """A white image with ``draw(ImageDraw)`` applied, as PNG bytes."""
    image = Image.new(mode, size, 255)
    draw(ImageDraw.Draw(image))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


SEVEN = png(lambda d: d.line([(60, 40), (140, 40), (90, 170)], fill=0, width=14))
ONE = png(lambda d: d.line([(100, 30), (100, 170)], fill=0, width=14))
ZERO = png(lambda d: d.ellipse([(60, 30), (140, 170)], outline=0, width=14))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """The app over the committed reference models only (an empty --out-dir: none of your runs)."""
    with TestClient(web_app.create_app(out_dir=tmp_path_factory.mktemp("none"))) as c:
        yield c


def test_both_pages_and_their_assets_are_served_with_a_strict_content_policy(client: TestClient) -> None:
    draw, dashboard = client.get("/"), client.get("/dashboard")
    assert draw.status_code == dashboard.status_code == 200
    assert '<canvas id="pad"' in draw.text and '<table id="board">' in dashboard.text
    for asset in ("/static/draw.js", "/static/dashboard.js", "/static/style.css", "/static/favicon.svg"):
        assert client.get(asset).status_code == 200, asset
    policy = draw.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe" not in policy
    assert "http" not in draw.text.replace("http-equiv", "") + dashboard.text  # nothing fetched from elsewhere


def test_every_trained_model_answers_a_drawn_digit_with_its_top_three(client: TestClient) -> None:
    reply = client.post("/api/predict?name=seven.png", content=SEVEN)
    assert reply.status_code == 200
    body = reply.json()
    assert [a["key"] for a in body["answers"]] == KEYS
    for a in body["answers"]:
        assert a["origin"] == "reference" and a["file"] == "seven.png"
        assert len(a["top"]) == 3 and a["number"] == str(a["top"][0][0]) and a["verdict"] == "digit"
        assert [p for _, p in a["top"]] == sorted((p for _, p in a["top"]), reverse=True)
    assert sum(a["number"] == "7" for a in body["answers"]) >= 7
    saw = Image.open(io.BytesIO(__import__("base64").b64decode(body["saw"].split(",")[1])))
    assert saw.size == (28, 28)


def test_the_page_answers_as_predict_does(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "zero.png").write_bytes(ZERO)
    page = {a["key"]: a for a in client.post("/api/predict", content=ZERO).json()["answers"]}
    for key in ("3", "fc"):
        said = zoo.predict(zoo.load(key, REFERENCE_ROOT, calibrated=True), tmp_path / "zero.png")[0]
        assert page[key]["top"] == [[d, pytest.approx(p, abs=1e-6)] for d, p in said.top]


def test_one_request_asks_the_detector_once_for_the_digits_every_model_saw_and_answers_as_asked_apart(
        client: TestClient, monkeypatch) -> None:  # noqa: ANN001
    from analysis import detector  # noqa: PLC0415

    gate, asked = detector.load(), []
    compute = gate._probability  # noqa: SLF001
    monkeypatch.setattr(gate, "_probability", lambda *a: asked.append(1) or compute(*a))
    body = client.post("/api/predict", content=SEVEN).json()
    assert len(body["answers"]) == len(KEYS) and len(asked) == 1  # one digit, the same for every model
    ink = web_app.clean(web_app.decode_gray(SEVEN))
    for a in body["answers"]:  # each model's answer as it is without the request's memory
        said = web_app.answer_ink(zoo.load(a["key"], REFERENCE_ROOT, calibrated=True), "x", ink)[0].to_dict()
        assert a["score"] == pytest.approx(said["score"], abs=1e-6) and a["number"] == said["number"]
    assert gate.remembered is None  # nothing kept once the request is answered


def test_noise_is_answered_not_a_digit_with_its_score_and_the_server_keeps_serving(client: TestClient) -> None:
    noise = io.BytesIO()
    Image.fromarray((torch.rand(120, 120, generator=torch.Generator().manual_seed(3)) * 255).round().byte().numpy()).save(
        noise, format="PNG")
    reply = client.post("/api/predict?name=noise.png", content=noise.getvalue())
    assert reply.status_code == 200
    v3 = {a["key"]: a for a in reply.json()["answers"]}["3"]
    assert v3["verdict"] == "not a digit" and v3["number"] is None and v3["top"] == []
    assert 0 <= v3["score"] < 1 and "threshold" in v3["reason"]
    assert client.post("/api/predict", content=SEVEN).status_code == 200


def test_a_number_is_read_digit_by_digit_and_the_page_shows_each_digit_seen(client: TestClient) -> None:
    number = png(lambda d: [d.line([(40 + 90 * i, 30), (100 + 90 * i, 30), (60 + 90 * i, 130)], fill=0, width=12)
                            for i in range(3)], size=(320, 160))  # 777
    body = client.post("/api/predict?saliency=1", content=number).json()
    v3 = {a["key"]: a for a in body["answers"]}["3"]
    assert v3["number"] == "777" and v3["verdict"] == "number" and len(v3["digits"]) == 3
    b64 = __import__("base64").b64decode
    assert Image.open(io.BytesIO(b64(body["saw"].split(",")[1]))).size == (84, 28)  # the three digits side by side
    assert Image.open(io.BytesIO(b64(v3["saliency"].split(",")[1]))).size == (84, 28)


def test_saliency_maps_come_only_on_request(client: TestClient) -> None:
    plain = client.post("/api/predict", content=ONE).json()["answers"]
    maps = client.post("/api/predict?saliency=1", content=ONE).json()["answers"]
    assert all("saliency" not in a for a in plain)
    assert all(a["saliency"].startswith("data:image/png;base64,") for a in maps)


@pytest.mark.parametrize(("body", "words"), [
    (b"hello, not an image", "not a readable image"),
    (SEVEN[:60], "not a readable image"),  # a truncated PNG
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not a readable image"),
    (png(lambda d: None), "blank"),
    (b"", "empty"),
])
def test_a_bad_upload_gets_one_clear_message_and_the_server_keeps_serving(client: TestClient, body: bytes,
                                                                         words: str) -> None:
    reply = client.post("/api/predict?name=upload.bin", content=body)
    assert reply.status_code == 400 and words in reply.json()["error"]
    assert client.post("/api/predict", content=SEVEN).status_code == 200


def test_an_upload_over_ten_megabytes_is_refused(client: TestClient) -> None:
    reply = client.post("/api/predict", content=b"\x00" * (web_app.MAX_UPLOAD + 1))
    assert reply.status_code == 413 and "at most 10,485,760" in reply.json()["error"]


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    buffer = io.BytesIO()
    Image.new("1", (9000, 9000), 1).save(buffer, format="PNG")  # 81 megapixels in a few kilobytes
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(web_app.BadUpload, match="too large an image"):
        web_app.answer([], buffer.getvalue(), "bomb.png")


def test_figures_are_named_by_model_and_kind_never_by_path(client: TestClient) -> None:
    confusion = client.get("/files/reference/3/confusion")
    assert confusion.status_code == 200 and confusion.headers["content-type"] == "image/png"
    assert confusion.content == ArtifactPaths("mnist_model_3", REFERENCE_ROOT).confusion_plot.read_bytes()
    assert client.get("/files/reference/zoo/frontier").status_code == 200
    assert "Total params: 8,650" in client.get("/files/reference/3/summary").text
    for bad in ("/files/reference/3/params", "/files/reference/nine/curves", "/files/etc/3/curves",
                "/files/reference/3/..%2F..%2Fmain.py", "/files/reference/..%2F..%2Fetc/passwd",
                "/static/..%2Fapp.py", "/files/run/3/curves"):
        assert client.get(bad).status_code == 404, bad


def test_the_dashboard_lists_every_model_and_marks_the_users_own(tmp_path: Path) -> None:
    mine = ArtifactPaths("mnist_model_3", tmp_path)
    for attr in ("params", "metrics", "plot"):
        getattr(mine, attr).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(getattr(ArtifactPaths("mnist_model_3", REFERENCE_ROOT), attr), getattr(mine, attr))
    with TestClient(web_app.create_app(out_dir=tmp_path)) as c:
        rows = c.get("/api/models").json()["models"]
        answers = c.post("/api/predict", content=SEVEN).json()["answers"]
        assert c.get("/files/folder/3/curves").content == mine.plot.read_bytes()
    assert [(r["key"], r["origin"]) for r in rows] == [(k, "reference") for k in KEYS] + [("3", "your folder")]
    reference = {r["key"]: r for r in rows if r["origin"] == "reference"}
    assert reference["3"]["params"] == 8650 and reference["3"]["seeds"]["n"] == 3
    assert reference["3"]["answering"] is False and rows[-1]["answering"] is True
    assert set(rows[-1]["figures"]) == {"curves"}
    assert {a["key"]: a["origin"] for a in answers}["3"] == "your folder"


def test_your_runs_are_served_and_listed_beside_the_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")
    for name in ("older", "newer"):
        mine = ArtifactPaths("mnist_model_fc", artifacts.run_dir("mnist_model_fc", name))
        for attr in ("params", "metrics", "confusion_plot"):
            getattr(mine, attr).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(getattr(ArtifactPaths("mnist_model_fc", REFERENCE_ROOT), attr), getattr(mine, attr))
    with TestClient(web_app.create_app(["3", "fc"])) as c:
        rows = c.get("/api/models").json()["models"]
        answers = {a["key"]: (a["origin"], a["run"]) for a in c.post("/api/predict", content=SEVEN).json()["answers"]}
        assert c.get("/files/run~mnist_model_fc~older/fc/confusion").status_code == 200
        assert c.get("/files/run~mnist_model_fc~nothere/fc/confusion").status_code == 404
    assert [(r["key"], r["origin"], r["run"], r["answering"]) for r in rows] == [
        ("3", "reference", None, True), ("fc", "reference", None, False),
        ("fc", "your run", "mnist_model_fc/newer", True), ("fc", "your run", "mnist_model_fc/older", False)]
    assert answers == {"3": ("reference", None), "fc": ("your run", "mnist_model_fc/newer")}


def test_concurrent_requests_each_get_their_own_answer(client: TestClient) -> None:
    bodies = [SEVEN, ONE, ZERO] * 4
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda b: client.post("/api/predict", content=b).json(), bodies))
    expected = {SEVEN: "7", ONE: "1", ZERO: "0"}
    for body, reply in zip(bodies, replies):
        said = {a["key"]: a["number"] for a in reply["answers"]}
        assert said["3"] == expected[body]


def test_only_loopback_addresses_count_as_local() -> None:
    assert all(server.is_local(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert not any(server.is_local(h) for h in ("0.0.0.0", "::", "192.168.1.4"))


def test_a_port_in_use_is_one_line_naming_the_flag(capsys) -> None:  # noqa: ANN001
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main.main(["--serve", "--port", str(port)])  # what main.py runs, in this process: stderr and the code
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"main.py: error: argument --port: {port} is in use on 127.0.0.1; choose another, or"
        " --port 0 for a free one"]


@pytest.mark.parametrize(("args", "words"), [
    (["--port", "8000"], "argument --port: works with --serve only"),
    (["--serve", "--port", "70000"], "argument --port: 70000 is outside [0, 65535]"),
    (["--serve", "--host", "no.such.host.invalid"], "argument --host: 'no.such.host.invalid' is not an address"),
    (["--serve", "--model", "nine"], "argument --model"),
])
def test_bad_serve_flags_are_one_line_and_exit_2(args: list[str], words: str, capsys) -> None:  # noqa: ANN001
    code, err = main.main(args), capsys.readouterr().err  # what main.py runs, in this process
    assert code == 2 and words in err and "Traceback" not in err


def test_serve_prints_its_address_answers_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "main.py", "--serve", "--port", "0", "--model", "3,fc", "--out-dir",
                                str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline() + process.stdout.readline()
        assert banner.startswith("serving 2 models: 3 (reference), fc (reference)")
        url = banner.split("draw at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(url + "api/predict", data=SEVEN, method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert [a["number"] for a in json.loads(reply.read())["answers"]] == ["7", "7"]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and out.strip().endswith("stopped") and "Traceback" not in err


def test_the_server_reads_with_one_thread_so_a_busy_core_cannot_stall_every_answer(monkeypatch: pytest.MonkeyPatch,
                                                                                       capsys) -> None:
    import uvicorn

    asked = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)  # the suite's own threads stay as they are
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    server.serve(["3"], None, port=0)
    assert asked == [server.INFERENCE_THREADS] == [1] and "stopped" in capsys.readouterr().out
