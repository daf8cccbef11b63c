"""The web app: a page to draw or upload a digit and see every trained model answer, and a dashboard of the zoo.

One ASGI application (Starlette) with two static pages and a small JSON API. The page's answers come from the
same library code as ``--predict``: ``digits.prepare`` makes the one 28x28 digit, ``analysis.evaluation``
runs each model on it and ``deploy.predict.Prediction`` words the answer. Nothing a client sends names a file:
figures are looked up by model key and a fixed list of kinds; uploads are size-capped and decoded with a
pixel cap; every bad request gets a JSON ``{"error": ...}`` the page shows, and the server goes on serving.
"""
from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from torch import nn

import model_strategy
from analysis import detector, inspection
from core import artifacts
from core.artifacts import REFERENCE_ROOT, ArtifactPaths, trained_root, trained_runs
from data_utils import normalize
from deploy.predict import answer_ink, calibrated, png_bytes
from digits.prepare import NO_INK, clean, decode_gray
from models import anatomy

STATIC = Path(__file__).with_name("static")
MAX_UPLOAD = 10 * 1024 * 1024  # bytes: a phone photo fits, a flood does not
FIGURES = {"curves": "plot", "confusion": "confusion_plot", "mistakes": "mistakes_plot", "filters": "filters_plot"}
SECURITY_HEADERS = {  # the pages load nothing from elsewhere, and may be framed by nobody
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """ASGI middleware: ``SECURITY_HEADERS`` on every response."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class BadUpload(Exception):
    """A request the app cannot answer; ``status`` is its HTTP status, the message is shown in the page."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Place:
    """A folder of trained models the app shows: the committed reference, one of your runs, or ``--out-dir``."""

    id: str  # in the figures' addresses: "reference", "folder", or "run~<stem>~<name>" (checked against this list)
    origin: str  # "reference", "your run" or "your folder"
    run: str | None  # the run's folder under runs/, as the page names it
    root: Path


def places(keys: list[str], out_dir: Path | None = None) -> dict[str, Place]:
    """Every folder holding a trained model of ``keys``: the reference, then ``out_dir`` or each of your runs."""
    found = {"reference": Place("reference", "reference", None, REFERENCE_ROOT)}
    if out_dir is not None:
        found["folder"] = Place("folder", "your folder", str(out_dir), Path(out_dir))
        return found
    runs = artifacts.RUNS_ROOT.resolve()
    roots = {root.resolve() for key in keys for root in trained_runs(model_strategy.get_strategy(key).stem)}
    if any(ArtifactPaths(model_strategy.get_strategy(k).stem, runs).params.is_file() for k in keys):
        roots.add(runs)  # runs/ itself: where runs went before each had a folder
    for root in sorted(roots):
        parts = root.relative_to(runs).parts
        place = Place("~".join(("run", *parts)), "your run", "/".join(parts) or "runs/", root)
        found[place.id] = place
    return found


@dataclass
class Served:
    """One trained model the app answers with: where its weights came from, and the network itself."""

    key: str
    place: Place
    model: nn.Module = field(repr=False)
    title: str = ""


def load_zoo(keys: list[str], out_dir: Path | None = None) -> list[Served]:
    """Each model of ``keys`` that has trained weights, read as ``--predict`` reads it (``artifacts.trained_root``:
    your latest run, else the reference); with ``out_dir``, the models in that folder, else the reference."""
    detector.load()  # read once at launch: a damaged detector file stops the app with one line, not each answer
    known = {place.root.resolve(): place for place in places(keys, out_dir).values()}
    served = []
    for key in keys:
        strategy = model_strategy.get_strategy(key)
        root = trained_root(strategy.stem, out_dir)
        if not ArtifactPaths(strategy.stem, root).params.is_file():
            root = REFERENCE_ROOT  # not in --out-dir
        if ArtifactPaths(strategy.stem, root).params.is_file():
            model = calibrated(model_strategy.load_trained(key, root, "cpu").eval(), root, strategy.stem)
            served.append(Served(key, known[root.resolve()], model, strategy.description))
    return served


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def heat_png(saliency: torch.Tensor) -> bytes:
    """A (28, 28) saliency map as an orange-on-black PNG (brighter: the answer depends more on that pixel)."""
    scaled = (saliency / saliency.max().clamp(min=1e-12)).numpy()
    rgb = np.stack([scaled, scaled ** 2 * 0.6, scaled ** 4 * 0.2], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def answer(zoo: list[Served], data: bytes, name: str, with_saliency: bool = False) -> dict:
    """Every model's answer to one image: decoded and cleaned once, then read by each model as ``--predict`` reads
    a file (a digit, or a number's digits: each model settles a wide piece of ink with its own confidence)."""
    started = time.perf_counter()
    try:
        ink = clean(decode_gray(data))  # once: every model reads the same cleaned ink
    except ValueError as exc:
        raise BadUpload(f"{name}: {exc}") from None
    if not (ink > 0).any():  # an empty canvas: nothing drawn yet, not a question for the models
        raise BadUpload(f"{name}: {NO_INK}")
    answers, saw = [], None
    with detector.remembering():  # the models mostly cut the same digits: the detector judges each once a request
        for served in zoo:
            said, digits = answer_ink(served.model, name, ink)
            if said.verdict == "unreadable":
                raise BadUpload(f"{name}: {said.reason}")
            saw = digits if saw is None else saw
            entry = {"key": served.key, "origin": served.place.origin, "run": served.place.run, "title": served.title,
                     **said.to_dict()}
            if with_saliency:
                maps = [inspection.saliency(served.model, normalize(d[None])[0])[0] for d in digits]
                entry["saliency"] = data_url(heat_png(torch.cat(maps, 1)))
            answers.append(entry)
    return {"saw": data_url(png_bytes(torch.cat(list(saw), 1))), "answers": answers,
            "server_ms": round(1000 * (time.perf_counter() - started), 1)}


def warm_up(zoo: list[Served]) -> None:
    """One answer before the first visitor's: PyTorch's first call on a model is many times slower than the next."""
    canvas = Image.new("L", (64, 64), 255)
    canvas.paste(0, (28, 8, 36, 56))  # a bar: a 1
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    answer(zoo, buffer.getvalue(), "warm-up", with_saliency=True)


async def read_body(request: Request, limit: int = MAX_UPLOAD) -> bytes:
    """The request's body, refused as soon as it passes ``limit`` bytes (whatever Content-Length claims)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadUpload(f"the upload is {int(declared):,} bytes; at most {limit:,} are accepted", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadUpload(f"the upload is larger than {limit:,} bytes", 413)
        chunks.append(chunk)
    if size == 0:
        raise BadUpload("the upload is empty: send the image's bytes as the request body")
    return b"".join(chunks)


def upload_name(request: Request) -> str:
    """The name the page gives an upload, for its messages only (never a path on the server)."""
    name = request.query_params.get("name", "drawing")
    return "".join(c for c in name if c.isprintable())[:80] or "upload"


def zoo_table(keys: list[str], out_dir: Path | None, serving: list[Served]) -> dict:
    """The dashboard's rows: every trained model in each known folder, with its figures' addresses."""
    board = {}
    try:
        board = {e["key"]: e for e in json.loads((REFERENCE_ROOT / "outputs" / "leaderboard.json").read_text())["entries"]}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    answering = {(s.key, s.place.id) for s in serving}
    rows, frontier = [], []
    for place in places(keys, out_dir).values():
        for key in keys:
            strategy = model_strategy.get_strategy(key)
            paths = ArtifactPaths(strategy.stem, place.root)
            if not paths.params.exists():
                continue
            try:
                record = json.loads(paths.metrics.read_text())
            except (OSError, ValueError):
                record = {}
            summary = record.get("summary") or {}
            shape = anatomy.analyse(strategy.builder())
            seeds = board.get(key) if place.id == "reference" else None
            rows.append({
                "key": key, "origin": place.origin, "run": place.run, "description": strategy.description,
                "family": strategy.family, "params": shape.params, "macs": shape.macs,
                "final_test_acc": summary.get("final_test_acc"), "epochs": summary.get("epochs_run"),
                "seeds": None if seeds is None else {"n": len(seeds["seeds"]), "mean": seeds["mean"], "std": seeds["std"]},
                "answering": (key, place.id) in answering,
                "figures": {kind: f"/files/{place.id}/{key}/{kind}" for kind, attr in FIGURES.items()
                            if getattr(paths, attr).exists()},
                "summary": f"/files/{place.id}/{key}/summary" if paths.summary.exists() else None,
            })
        if (place.root / "plots" / "leaderboard.png").is_file():
            frontier.append(f"/files/{place.id}/zoo/frontier")
    return {"models": rows, "frontier": frontier}


def figure_path(known: dict[str, Place], keys: list[str], place: str, key: str, kind: str) -> Path:
    """The file behind ``/files/PLACE/KEY/KIND``: a known folder, a served model's key (or ``zoo`` for the
    accuracy-size frontier) and a kind from ``FIGURES`` or ``summary``; anything else is a 404."""
    if place not in known:
        raise BadUpload(f"no folder {place!r}", 404)
    root = known[place].root
    if key == "zoo" and kind == "frontier":
        path = root / "plots" / "leaderboard.png"
    elif key in keys and (kind in FIGURES or kind == "summary"):
        paths = ArtifactPaths(model_strategy.get_strategy(key).stem, root)
        path = paths.summary if kind == "summary" else getattr(paths, FIGURES[kind])
    else:
        raise BadUpload(f"no figure {key}/{kind}", 404)
    if not path.is_file():
        raise BadUpload(f"{key}/{kind} has not been made in {place}", 404)
    return path


def create_app(keys: list[str] | None = None, out_dir: Path | None = None) -> Starlette:
    """The app for the models ``keys`` (default: every model of the registry that has trained weights)."""
    keys = keys or model_strategy.available_models()
    serving = load_zoo(keys, out_dir)
    warm_up(serving)

    async def predict(request: Request) -> Response:
        data = await read_body(request)
        saliency = request.query_params.get("saliency") == "1"
        return JSONResponse(await run_in_threadpool(answer, serving, data, upload_name(request), saliency))

    async def models(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(zoo_table, keys, out_dir, serving))

    async def files(request: Request) -> Response:
        place, key, kind = (request.path_params[k] for k in ("place", "key", "kind"))
        path = figure_path(places(keys, out_dir), keys, place, key, kind)
        if kind == "summary":
            return PlainTextResponse(path.read_text(errors="replace"))
        return FileResponse(path, media_type="image/png")

    async def bad(request: Request, exc: BadUpload) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    def static_page(path: str, name: str) -> Route:
        async def endpoint(request: Request) -> Response:
            return FileResponse(STATIC / name, media_type="text/html")
        return Route(path, endpoint)

    routes = [
        static_page("/", "draw.html"),
        static_page("/dashboard", "dashboard.html"),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/models", models),
        Route("/files/{place}/{key}/{kind}", files),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={BadUpload: bad},
                    middleware=[Middleware(SecurityHeaders)])
    app.state.serving = serving
    return app
