"""Load benchmark of the inspector service: POST /v1/inspect on real DeepPCB boards.

For each concurrency level it sends --requests requests from that many client threads
(loopback only) and reports p50/p95 latency, throughput and errors as a markdown table.

    python benchmarks/serve_load.py                         # champion of .defectqa, 1000 requests per level
    python benchmarks/serve_load.py --requests 40 --out bench-serve.md
    python benchmarks/serve_load.py --model path/to/model   # a model folder or models:/defect-vlm/3
    python benchmarks/serve_load.py --url http://127.0.0.1:8000   # a server already running
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QUESTIONS = ["Describe all defects on this board.", "Where is the short circuit?", "How many spurs?",
             "Any pin-holes?"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="benchmark a running server (loopback only) instead of starting one")
    p.add_argument("--model", help="model URI or folder for the started server (default: the champion)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--set", dest="sets", action="append", default=[], help="config override; repeatable")
    p.add_argument("--requests", type=int, default=1000, help="requests per concurrency level")
    p.add_argument("--concurrency", default="1,4,8", help="comma-separated levels, each at most 32")
    p.add_argument("--data", default=os.environ.get("DEFECTQA_DEEPPCB") or str(REPO / "../shared/data/deeppcb"))
    p.add_argument("--boards", type=int, default=64, help="distinct boards to cycle through")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    p.add_argument("--startup-timeout", type=float, default=600)
    a = p.parse_args(argv)
    a.levels = [int(c) for c in a.concurrency.split(",") if c.strip()]
    if a.requests < 1 or not a.levels or not all(1 <= c <= 32 for c in a.levels):
        p.error("--requests must be >= 1 and each --concurrency level in 1..32")
    if a.url and urlparse(a.url).hostname not in LOOPBACK:
        p.error(f"--url must be a loopback address ({', '.join(sorted(LOOPBACK))}): this is a local benchmark")
    return a


def load_boards(root: str, n: int) -> list[tuple[bytes, bytes | None]]:
    """(board, template) bytes of the first n DeepPCB boards under root, read once into memory."""
    from components.config import CLASSES
    from components.data.records import read_deeppcb

    samples = []
    for group in sorted(Path(root).glob("group*")):
        samples += read_deeppcb(group, CLASSES)  # DeepPCB's own vocabulary; only the bytes are used
        if len(samples) >= n:
            break
    if not samples:
        sys.exit(f"no DeepPCB boards under {root} (set DEFECTQA_DEEPPCB or --data)")
    return [(Path(s.test_path).read_bytes(), Path(s.template_path).read_bytes() if s.template_path else None)
            for s in samples[:n]]


# ---------------------------------------------------------------- the server

def start_server(a: argparse.Namespace, log_path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "components.serving.server", "--host", "127.0.0.1", "--port", str(port),
           "--params", a.params] + [x for kv in a.sets for x in ("--set", kv)]
    cmd += ["--model", a.model] if a.model else []
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float, log_path: Path | None) -> dict:
    deadline = time.monotonic() + timeout
    last = "no answer yet"  # the port opens only once the model has loaded
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text()[-3000:] if log_path else ""
            sys.exit(f"the server exited with code {proc.returncode}:\n{tail}")
        try:
            r = httpx.get(f"{url}/healthz", timeout=5)
            if r.status_code == 200:
                return r.json()["model"]
            # The server answers only after loading, so a 503 means no model (e.g. no champion yet).
            sys.exit(f"the server at {url} has no model: {r.json().get('message', r.text)}")
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.5)
    sys.exit(f"the server at {url} was not ready after {timeout:.0f} s: {last}")


# ---------------------------------------------------------------- the load

def batch_counts(url: str) -> tuple[float, float]:
    """(model calls, requests answered by them) so far, from the server's batch-size histogram."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=30).text
    except httpx.HTTPError:
        return math.nan, math.nan
    found = dict(re.findall(r"^defectqa_batch_size_(count|sum) (\S+)$", text, re.M))
    return float(found.get("count", "nan")), float(found.get("sum", "nan"))


def run_level(url: str, boards, n: int, concurrency: int) -> dict:
    """n requests from `concurrency` threads; each thread keeps one connection."""
    counter, lock = itertools.count(), threading.Lock()
    calls0, asked0 = batch_counts(url)
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        with httpx.Client(timeout=300) as client:
            while (i := next(counter)) < n:
                files = upload(*boards[i % len(boards)])
                start = time.perf_counter()
                try:
                    r = client.post(f"{url}/v1/inspect", files=files, data={"question": QUESTIONS[i % len(QUESTIONS)]})
                    ok, why = r.status_code == 200, f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    ok, why = False, type(exc).__name__
                elapsed = time.perf_counter() - start
                with lock:
                    (latencies.append(elapsed) if ok else errors.append(why))

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    wall = time.perf_counter() - start
    calls1, asked1 = batch_counts(url)
    mean_batch = (asked1 - asked0) / (calls1 - calls0) if calls1 > calls0 else math.nan
    return {"concurrency": concurrency, "requests": n, "errors": len(errors), "wall_s": wall, "mean_batch": mean_batch,
            "p50": percentile(latencies, 0.50), "p95": percentile(latencies, 0.95),
            "throughput": len(latencies) / wall, "error_kinds": sorted(set(errors))}


def upload(board: bytes, template: bytes | None) -> dict:
    return {"image": ("board.jpg", board)} | ({"template": ("template.jpg", template)} if template else {})


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def table(rows: list[dict], model: dict, n_boards: int) -> str:
    head = (f"Serving benchmark: POST /v1/inspect, {rows[0]['requests']} requests per level, {n_boards} DeepPCB "
            f"boards with templates, model {model['name']} version {model['version']}, "
            f"{os.cpu_count()} CPUs ({platform.machine()}), {time.strftime('%Y-%m-%d %H:%M')}\n\n")
    lines = ["| concurrency | requests | errors | p50 latency (s) | p95 latency (s) | throughput (req/s) "
             "| requests per model call |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['concurrency']} | {r['requests']} | {r['errors']} | {r['p50']:.3f} | {r['p95']:.3f} "
                     f"| {r['throughput']:.2f} | {r['mean_batch']:.2f} |")
    kinds = {k for r in rows for k in r["error_kinds"]}
    return head + "\n".join(lines) + (f"\n\nErrors seen: {', '.join(sorted(kinds))}" if kinds else "") + "\n"


def main(argv=None) -> None:
    a = parse_args(argv)
    boards = load_boards(a.data, a.boards)
    proc, log_path = None, None
    url = a.url
    if url is None:
        log_path = Path(tempfile.mkdtemp(prefix="serve-bench-")) / "server.log"
        proc, url = start_server(a, log_path)
    try:
        model = wait_ready(url, proc, a.startup_timeout, log_path)
        for board, template in boards[:2]:  # warm-up, not measured
            httpx.post(f"{url}/v1/inspect", files=upload(board, template), data={"question": QUESTIONS[0]}, timeout=300)
        rows = []
        for c in a.levels:
            rows.append(run_level(url, boards, a.requests, c))
            print(f"concurrency {c}: done in {rows[-1]['wall_s']:.1f} s", file=sys.stderr)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    text = table(rows, model, len(boards))
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
