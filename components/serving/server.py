"""Serve the app with uvicorn: `run` for the CLI, `BackgroundServer` for tests and benchmarks,
and `python -m components.serving.server` for a separate server process."""
from __future__ import annotations

import argparse
import socket
import sys
import threading
import time

import uvicorn

from components.config import Config
from components.serving.app import create_app


def run(cfg: Config, model_uri: str | None = None, host: str | None = None, port: int | None = None,
        other_lines: dict[str, Config] | None = None) -> None:
    """Serve until interrupted. A fixed `model_uri` that cannot be loaded raises before the port opens.
    other_lines: the further product lines whose champions this service also answers for."""
    app = create_app(cfg, model_uri, other_lines)
    app.state.holder.start()  # fail here with the registry's message, not inside uvicorn's startup
    uvicorn.run(app, host=host or cfg.serve.host, port=port or cfg.serve.port, log_level="info",
                timeout_graceful_shutdown=10)


class BackgroundServer:
    """A real uvicorn serving `app` on a free loopback port in a thread; use as a context manager."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port or _free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 300  # startup loads the model
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start (see the log above)")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    from components import config

    p = argparse.ArgumentParser(description="Serve the defect inspector (API + web page).")
    p.add_argument("--model", default=None, help="models:/<name>@champion (default), a version, or a folder")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--set", dest="sets", action="append", default=[], help="section.key=value; repeatable")
    a = p.parse_args(argv)
    from components.registry.registry import RegistryError

    try:
        cfg = config.load(a.params, a.sets)
        run(cfg, a.model, a.host, a.port, None if a.model else config.other_lines(cfg, a.params, a.sets))
    except (RegistryError, FileNotFoundError, ValueError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
