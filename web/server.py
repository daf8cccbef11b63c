"""``main.py --serve``: the web app (``web.app``) on uvicorn, bound to localhost unless told otherwise."""
from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from pathlib import Path

from config import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8784  # unassigned by IANA and unused by the field's usual tools (TensorBoard 6006, Gradio 7860)
# A drawing is a handful of 28x28 digits, too little work to share between cores; and the browser that drew it
# often runs on the same machine. PyTorch's threads wait on each other, so one busy core stalls every answer.
INFERENCE_THREADS = 1


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), or a ``ConfigError`` naming the flag at fault."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError("host", f"{host!r} is not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # in use (Linux, macOS, Windows)
            raise ConfigError("port", f"{port} is in use on {host}; choose another, or --port 0 for a free one") from None
        flag = "port" if exc.errno == 13 else "host"  # 13: a port below 1024 needs privileges
        raise ConfigError(flag, f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


def serve(keys: list[str] | None, out_dir: Path | None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the draw page and the dashboard until Ctrl-C (or SIGTERM); prints the address first."""
    import torch  # noqa: PLC0415
    import uvicorn  # noqa: PLC0415 - here, so that the other modes start without the web stack

    torch.set_num_threads(INFERENCE_THREADS)
    from web.app import create_app  # noqa: PLC0415
    sock = bind(host, port)
    app = create_app(keys, out_dir)
    if not app.state.serving:
        sock.close()
        raise ConfigError("model", "no trained model to serve: train one, or serve from the repository's folder")
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{sock.getsockname()[1]}/"
    if not is_local(host):
        print(f"warning: --host {host} serves the app to every machine that can reach this one; it has no login",
              file=sys.stderr)
    names = ", ".join(f"{s.key} ({s.place.run or s.place.origin})" for s in app.state.serving)
    print(f"serving {len(app.state.serving)} models: {names}\n"
          f"draw at {address}  ·  the zoo's dashboard at {address}dashboard  ·  Ctrl-C stops", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn has shut down gracefully, then re-raises the signal
        server.run(sockets=[sock])
    print("stopped", flush=True)
