#!/usr/bin/env python
"""A real server stack on 127.0.0.1, without docker: the loopback twin of docker-compose.yml.

    python infra/stack.py up|down|status [--state DIR] [--base-port N]

Services, in start order (each on base port + offset):
  postgres : Debian's PostgreSQL, its own cluster in the state folder (databases mlflow, prefect)
  s3       : moto's S3 server (in memory!), buckets mlflow-artifacts and dvc
  mlflow   : mlflow server on PostgreSQL, artifacts proxied to s3://mlflow-artifacts
  prefect  : prefect server on PostgreSQL
  worker   : prefect worker on the process work pool "defectqa", cwd = the repo root

Everything (cluster, logs, pids, PREFECT_HOME, env.sh, stack.json) lives in the state folder.
Tests use the class: Stack(state_dir, base_port).up() / .down() / .stop(name) / .start(name) / .env().
This module is standalone on purpose: it imports nothing from components/flows/tasks.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STATE = REPO / ".defectqa" / "stack"
HOST = "127.0.0.1"

# Off the usual 5000/4200/5432 so a `make ui-mlflow` or a system PostgreSQL never collides.
DEFAULT_BASE_PORT = 15430
PORT_OFFSETS = {"postgres": 0, "s3": 1, "mlflow": 2, "prefect": 3}
SERVICES = ("postgres", "s3", "mlflow", "prefect", "worker")  # start order; stop is the reverse
NEEDS = {"mlflow": ("postgres", "s3"), "prefect": ("postgres",), "worker": ("prefect", "mlflow", "s3")}

# First starts run database migrations (MLflow, Prefect); on a busy 2-core machine that takes minutes.
START_TIMEOUT_S = {"postgres": 60, "s3": 60, "mlflow": 300, "prefect": 300, "worker": 120}
STOP_TIMEOUT_S = 15      # SIGTERM grace before SIGKILL
POLL_S = 0.5
HTTP_TIMEOUT_S = 3
CLOCK_SLACK_S = 1        # server and client timestamps come from the same clock, but rounded

PG_APP_USER = "defectqa"          # the role MLflow and Prefect log in as (password, over TCP)
DATABASES = ("mlflow", "prefect")
BUCKETS = ("mlflow-artifacts", "dvc")
WORK_POOL = "defectqa"
WORKER_NAME = "defectqa-stack-worker"   # a fixed name: a restarted worker reuses its API record
WORKER_HEARTBEAT_S = 10                 # Prefect's default is 30; shorter so a killed worker shows OFFLINE sooner
MLFLOW_WORKERS = 2                      # uvicorn workers; MLflow's default of 4 is too many for 2 cores
# moto accepts any key pair; these are placeholders, not secrets. MinIO in production has real ones.
S3_KEY_ID = "defectqa"
S3_SECRET = "defectqa-local-secret"
S3_REGION = "us-east-1"
LOG_TAIL_LINES = 25


class StackError(RuntimeError):
    """A service did not come up (the message names it and its log) or the stack is misconfigured."""


# ---------------------------------------------------------------- processes


def proc_stat(pid: int) -> list[str] | None:
    """[state, ppid, pgrp, session, ...] of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str | None:
    """Kernel start time of a process: with the pid, it tells our process from a later one that reused the pid."""
    stat = proc_stat(pid)
    return stat[19] if stat else None


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group: what 'still running' means for a service."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat and stat[0] != "Z" and int(stat[2]) == pgid:
                members.append(int(entry))
    return members


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As servers do: connections of a just-stopped service in TIME_WAIT must not count as "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_base_port(start: int = 20000, stop: int = 40000) -> int:
    """A base port whose service ports are all free now (tests use it so they never meet a user's stack)."""
    span = max(PORT_OFFSETS.values()) + 1
    for base in range(start + secrets.randbelow(1000) * span, stop - span, span):
        if all(port_free(base + off) for off in range(span)):
            return base
    raise StackError(f"no {span} free consecutive ports between {start} and {stop}")


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- PostgreSQL helpers


def pg_bindir() -> Path:
    """Debian puts server binaries (initdb, pg_ctl) off PATH, under /usr/lib/postgresql/<major>/bin."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise StackError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin): "
                     "run `bash infra/install-stack.sh`")


def pg_os_user() -> str:
    """PostgreSQL refuses to run as root: as root we use the `postgres` user Debian's package creates."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("running as root but there is no `postgres` user: "
                         "run `bash infra/install-stack.sh`") from None
    return "postgres"


def as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


# ---------------------------------------------------------------- the stack


class Stack:
    """The loopback stack in one state folder. All methods are idempotent."""

    def __init__(self, state_dir: str | Path = DEFAULT_STATE, base_port: int | None = None):
        self.state = Path(state_dir).resolve()
        recorded = self._load()
        self._services: dict[str, dict] = recorded.get("services", {})  # name -> {pid, pgid}
        self._procs: dict[str, subprocess.Popen] = {}  # children of this process, reaped on stop
        recorded_port = recorded.get("base_port")
        if base_port and recorded_port and base_port != recorded_port and self._any_alive():
            raise StackError(f"the stack in {self.state} runs on base port {recorded_port}; `down` it first")
        self.base_port = base_port or recorded_port or DEFAULT_BASE_PORT

    # ---- layout

    @property
    def ports(self) -> dict[str, int]:
        return {name: self.base_port + off for name, off in PORT_OFFSETS.items()}

    @property
    def urls(self) -> dict[str, str]:
        p = self.ports
        return {
            "mlflow": f"http://{HOST}:{p['mlflow']}",
            "prefect_ui": f"http://{HOST}:{p['prefect']}",
            "prefect_api": f"http://{HOST}:{p['prefect']}/api",
            "s3": f"http://{HOST}:{p['s3']}",
        }

    def path(self, *parts: str) -> Path:
        return self.state.joinpath(*parts)

    def log_path(self, name: str) -> Path:
        return self.path("logs", f"{name}.log")

    def db_url(self, database: str, driver: str = "postgresql") -> str:
        """URL of a stack database as the app role, e.g. for psycopg2.connect(stack.db_url("mlflow"))."""
        return f"{driver}://{PG_APP_USER}:{self._pg_password()}@{HOST}:{self.ports['postgres']}/{database}"

    def env(self) -> dict[str, str]:
        """What a client (a flow, DVC, the MLflow client, the prefect CLI) needs to use the stack."""
        return {
            "MLFLOW_TRACKING_URI": self.urls["mlflow"],
            "PREFECT_API_URL": self.urls["prefect_api"],
            "AWS_ENDPOINT_URL_S3": self.urls["s3"],  # botocore's variable: DVC/s3fs/boto3 reach moto
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": S3_REGION,
        }

    def info(self) -> dict:
        return {
            "state": str(self.state),
            "base_port": self.base_port,
            "ports": self.ports,
            "urls": self.urls,
            "env": self.env(),
            "services": {n: {**rec, "log": str(self.log_path(n))} for n, rec in self._services.items()},
            "paths": {
                "logs": str(self.path("logs")),
                "postgres_data": str(self.path("postgres", "data")),
                "postgres_socket_dir": str(self.path("postgres", "run")),
                "prefect_home": str(self.path("prefect")),
                "env_sh": str(self.path("env.sh")),
            },
        }

    # ---- lifecycle

    def up(self) -> dict:
        """Start whatever is not healthy, wait for it, write env.sh and stack.json; returns info()."""
        self._prepare_state()
        self.start("postgres")
        self.start("s3")
        # The two slow starters (database migrations) come up side by side.
        pending = [n for n in ("mlflow", "prefect") if not self.healthy(n)]
        for name in pending:
            self.start(name, wait=False)
        for name in pending:
            self._wait(name)
        self.start("worker")
        self._write_client_files()
        return self.info()

    def down(self) -> None:
        for name in reversed(SERVICES):
            self.stop(name)

    def start(self, name: str, wait: bool = True) -> None:
        """Start one service (its dependencies must be up) unless it is already healthy."""
        self._prepare_state()
        if self.healthy(name):
            self._after_start(name)
            return
        missing = [dep for dep in NEEDS.get(name, ()) if not self.healthy(dep)]
        if missing:
            raise StackError(f"{name} needs {', '.join(missing)} up first (Stack.start them, or `up`)")
        self.stop(name)  # a leftover that is alive but not healthy would hold the port
        port = self.ports.get(name)
        if port and not port_free(port):
            raise StackError(f"{name}: port {port} is taken by another program; pick another --base-port")
        getattr(self, f"_start_{name}")()
        if wait:
            self._wait(name)

    def stop(self, name: str) -> None:
        """Stop one service and everything in its process group; no-op when it is not running."""
        if name == "postgres":
            self._stop_postgres()
        rec = self._services.pop(name, None)
        if rec and self._members(rec):
            self._kill_group(rec["pgid"], self._procs.pop(name, None))
        self._save()

    def status(self) -> dict[str, bool]:
        return {name: self.healthy(name) for name in SERVICES}

    def healthy(self, name: str) -> bool:
        if name != "postgres" and not self._alive(name):
            return False
        try:
            return getattr(self, f"_healthy_{name}")()
        except Exception:  # connection refused, timeouts, half-started servers: all mean "not yet"
            return False

    # ---- waiting

    def _wait(self, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S[name]
        while not self.healthy(name):
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is not None:
                self._fail(name, f"exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                self._fail(name, f"not healthy after {START_TIMEOUT_S[name]} s")
            time.sleep(POLL_S)
        self._after_start(name)

    def _fail(self, name: str, why: str) -> None:
        log = self.log_path(name)
        raise StackError(f"{name} {why}; log: {log}\n--- last lines of {log.name} ---\n{_tail(log)}")

    def _after_start(self, name: str) -> None:
        """Idempotent set-up a service needs once it answers (moto forgets its buckets on restart)."""
        hooks = {"postgres": self._ensure_databases, "s3": self._ensure_buckets, "prefect": self._ensure_work_pool}
        if name in hooks:
            hooks[name]()

    # ---- process bookkeeping

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        # A new session per service: stopping it kills its whole group (uvicorn workers, flow runs).
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, cwd=REPO, start_new_session=True)
        self._procs[name] = proc
        self._record(name, proc.pid)

    @staticmethod
    def _members(rec: dict) -> list[int]:
        """The live processes of a recorded service; none when its pid now belongs to someone else."""
        leader = _start_time(rec["pgid"])
        if leader is not None and leader != rec.get("start"):
            return []  # the recorded leader is gone and its pid was reused: not ours to touch
        return group_members(rec["pgid"])

    def _record(self, name: str, pid: int) -> None:
        self._services[name] = {"pid": pid, "pgid": os.getpgid(pid), "start": _start_time(pid),
                                "started_at": time.time()}
        self._save()

    def _alive(self, name: str) -> bool:
        rec = self._services.get(name)
        return bool(rec and self._members(rec))

    def _any_alive(self) -> bool:
        return any(self._members(rec) for rec in self._services.values())

    def _kill_group(self, pgid: int, proc: subprocess.Popen | None) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline:
                if proc is not None:
                    proc.poll()  # reap our own child, else it lingers as a zombie
                if not group_members(pgid):
                    return
                time.sleep(POLL_S / 5)

    def _child_env(self, **extra: str) -> dict[str, str]:
        # A user's own PREFECT_API_URL, MLFLOW_TRACKING_URI or AWS profile must not leak into the stack.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "AWS_"))}
        # The venv's bin first, so `prefect`, `dvc`, `mlflow` in flow runs are this project's.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(PREFECT_HOME=str(self.path("prefect")), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        env.update(extra)
        return env

    # ---- state files

    def _prepare_state(self) -> None:
        self.path("logs").mkdir(parents=True, exist_ok=True)
        self.path("prefect").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            self.state.chmod(0o711)  # the postgres user must traverse into its cluster folder

    def _load(self) -> dict:
        try:
            return json.loads(self.path("stack.json").read_text())
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        if not self.state.is_dir():
            return
        target = self.path("stack.json")
        tmp = target.with_suffix(".tmp")
        # stack.json holds the database password: owner-only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({**self.info(), "db_urls": {d: self.db_url(d) for d in DATABASES}}, fh, indent=2)
        tmp.replace(target)

    def _write_client_files(self) -> None:
        lines = ["# Written by infra/stack.py up. Source it:  . " + shlex.quote(str(self.path("env.sh")))]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.env().items()]
        self.path("env.sh").write_text("\n".join(lines) + "\n")
        self._save()

    # ---- postgres

    def _pg_password(self) -> str:
        """Generated once per state folder (loopback only, but other local users must not get in)."""
        path = self.path("postgres.password")
        if not path.exists():
            self.state.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(16))
        return path.read_text().strip()

    def _pg(self, tool: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
        cmd = as_pg_user([str(pg_bindir() / tool), *args])
        return subprocess.run(cmd, cwd=self.path("postgres"), capture_output=True, text=True, **kwargs)

    def _postmaster_pid(self) -> int | None:
        try:
            pid = int(self.path("postgres", "data", "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if proc_stat(pid) else None

    def _healthy_postgres(self) -> bool:
        if self._postmaster_pid() is None:  # pg_isready alone would also accept someone else's server
            return False
        ready = subprocess.run([str(pg_bindir() / "pg_isready"), "-q", "-h", HOST, "-p", str(self.ports["postgres"])])
        return ready.returncode == 0

    def _start_postgres(self) -> None:
        pgdir, log = self.path("postgres"), self.log_path("postgres")
        data, sock = pgdir / "data", pgdir / "run"
        if len(str(sock)) > 90:  # unix socket paths are limited to 107 bytes, with ".s.PGSQL.<port>" appended
            raise StackError(f"state folder path too long for a unix socket: {sock}; use a shorter --state")
        sock.mkdir(parents=True, exist_ok=True)
        log.touch()
        user = pg_os_user()
        if os.geteuid() == 0:
            owner = pwd.getpwnam(user)
            for path in (pgdir, sock, log):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            if subprocess.run(as_pg_user(["test", "-w", str(pgdir)])).returncode != 0:
                raise StackError(f"the postgres user cannot reach {pgdir}: make its parent folders "
                                 "traversable (chmod o+x) or use a --state under /tmp")
        if not (data / "PG_VERSION").exists():
            # peer auth on the socket for the admin (the OS user), passwords over TCP for the app role.
            self._pg_checked("initdb", "-D", str(data), "-U", user, "--auth-local=peer",
                             "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C")
        options = f"-c listen_addresses={HOST} -p {self.ports['postgres']} -k {shlex.quote(str(sock))}"
        self._pg_checked("pg_ctl", "-D", str(data), "-l", str(log), "-o", options,
                         "-w", "-t", str(START_TIMEOUT_S["postgres"]), "start")
        pid = self._postmaster_pid()
        if pid is None:
            self._fail("postgres", "did not write postmaster.pid")
        self._record("postgres", pid)  # pg_ctl detaches the postmaster into its own session

    def _pg_checked(self, tool: str, *args: str) -> None:
        done = self._pg(tool, *args)
        if done.returncode != 0:
            output = done.stderr.strip() or done.stdout.strip()
            raise StackError(f"postgres: {tool} failed ({done.returncode}): {output}"
                             f"\nlog: {self.log_path('postgres')}\n{_tail(self.log_path('postgres'))}")

    def _psql(self, sql: str) -> str:
        done = self._pg("psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                        "-h", str(self.path("postgres", "run")), "-p", str(self.ports["postgres"]),
                        "-U", pg_os_user(), "-d", "postgres", "-f", "-", input=sql)
        if done.returncode != 0:
            raise StackError(f"postgres: psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def _ensure_databases(self) -> None:
        # SQL goes through stdin, so the password never shows in a process list.
        password = self._pg_password()
        self._psql(f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_APP_USER}') "
                   f"THEN CREATE ROLE {PG_APP_USER} LOGIN; END IF; END$$;\n"
                   f"ALTER ROLE {PG_APP_USER} PASSWORD '{password}';")
        for db in DATABASES:
            if not self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}';"):
                self._psql(f"CREATE DATABASE {db} OWNER {PG_APP_USER};")

    def _stop_postgres(self) -> None:
        if self._postmaster_pid() is not None:
            self._pg("pg_ctl", "-D", str(self.path("postgres", "data")), "-m", "fast", "-w",
                     "-t", str(STOP_TIMEOUT_S), "stop")

    # ---- s3 (moto)

    def s3_client(self):
        """A boto3 S3 client on the stack's moto server."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.urls["s3"], aws_access_key_id=S3_KEY_ID,
                            aws_secret_access_key=S3_SECRET, region_name=S3_REGION,
                            config=Config(connect_timeout=HTTP_TIMEOUT_S, read_timeout=HTTP_TIMEOUT_S,
                                          retries={"max_attempts": 1}))

    def _start_s3(self) -> None:
        self._spawn("s3", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.ports["s3"])],
                    self._child_env())

    def _healthy_s3(self) -> bool:
        self.s3_client().list_buckets()
        return True

    def _ensure_buckets(self) -> None:
        s3 = self.s3_client()
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for bucket in BUCKETS:
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)

    # ---- mlflow

    def _start_mlflow(self) -> None:
        port = self.ports["mlflow"]
        cmd = [sys.executable, "-m", "mlflow", "server",
               "--serve-artifacts", "--artifacts-destination", f"s3://{BUCKETS[0]}",
               "--host", HOST, "--port", str(port), "--workers", str(MLFLOW_WORKERS),
               # MLflow 3 checks the Host header (DNS rebinding); these are the names used on loopback.
               "--allowed-hosts", f"{HOST},{HOST}:{port},localhost,localhost:{port}"]
        # The backend URI goes in the environment, not argv: argv (with the password) is world-readable.
        # "+psycopg2": SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not installed.
        env = self._child_env(MLFLOW_BACKEND_STORE_URI=self.db_url("mlflow", "postgresql+psycopg2"),
                              MLFLOW_S3_ENDPOINT_URL=self.urls["s3"], AWS_ACCESS_KEY_ID=S3_KEY_ID,
                              AWS_SECRET_ACCESS_KEY=S3_SECRET, AWS_DEFAULT_REGION=S3_REGION,
                              # The job runner (GenAI scorers, trace jobs) adds 8 processes; this project uses none.
                              MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self._spawn("mlflow", cmd, env)

    def _healthy_mlflow(self) -> bool:
        import httpx

        return httpx.get(f"{self.urls['mlflow']}/health", timeout=HTTP_TIMEOUT_S).status_code == 200

    # ---- prefect

    def _start_prefect(self) -> None:
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST,
               "--port", str(self.ports["prefect"]), "--no-background"]
        env = self._child_env(PREFECT_SERVER_DATABASE_CONNECTION_URL=self.db_url("prefect", "postgresql+asyncpg"),
                              PREFECT_SERVER_UI_API_URL=self.urls["prefect_api"])
        self._spawn("prefect", cmd, env)

    def _healthy_prefect(self) -> bool:
        import httpx

        response = httpx.get(f"{self.urls['prefect_api']}/health", timeout=HTTP_TIMEOUT_S)
        return response.status_code == 200 and response.json() is True

    def _ensure_work_pool(self) -> None:
        import httpx

        if httpx.get(f"{self.urls['prefect_api']}/work_pools/{WORK_POOL}", timeout=HTTP_TIMEOUT_S).status_code == 200:
            return
        # The CLI fills in the process worker's default job template, which the bare API call would not.
        done = subprocess.run([sys.executable, "-m", "prefect", "work-pool", "create", WORK_POOL, "--type", "process"],
                              env=self._child_env(PREFECT_API_URL=self.urls["prefect_api"]),
                              capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            raise StackError(f"prefect: creating work pool {WORK_POOL!r} failed: {done.stdout}{done.stderr}")

    # ---- worker

    def _start_worker(self) -> None:
        cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL, "--type", "process",
               "--name", WORKER_NAME]
        env = self._child_env(**self.env(), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                              TOKENIZERS_PARALLELISM="false", PREFECT_WORKER_HEARTBEAT_SECONDS=str(WORKER_HEARTBEAT_S))
        self._spawn("worker", cmd, env)

    def workers(self) -> list[dict]:
        """The work pool's workers as the Prefect API sees them (name, status, last_heartbeat_time)."""
        import httpx

        response = httpx.post(f"{self.urls['prefect_api']}/work_pools/{WORK_POOL}/workers/filter",
                              json={}, timeout=HTTP_TIMEOUT_S)
        response.raise_for_status()
        return response.json()

    def _healthy_worker(self) -> bool:
        # A killed worker's record stays ONLINE for a while: only a heartbeat from this process counts.
        started = self._services["worker"]["started_at"]
        return any(w["name"] == WORKER_NAME and w["status"] == "ONLINE" and w["last_heartbeat_time"]
                   and datetime.fromisoformat(w["last_heartbeat_time"]).timestamp() >= started - CLOCK_SLACK_S
                   for w in self.workers())


# ---------------------------------------------------------------- CLI


def _print_up(info: dict) -> None:
    print(f"MLflow UI : {info['urls']['mlflow']}")
    print(f"Prefect UI: {info['urls']['prefect_ui']}")
    print(f"S3 (moto, in memory): {info['urls']['s3']}  buckets: {', '.join(BUCKETS)}")
    print(f"state and logs: {info['state']}")
    print("client environment (also in env.sh):")
    print("  export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in info["env"].items()))
    print("  DVC remote for flows: --set paths.dvc_remote=s3://dvc/defectqa")


def _print_status(stack: Stack) -> bool:
    ok = True
    for name, healthy in stack.status().items():
        rec = stack.info()["services"].get(name, {})
        where = stack.urls.get("prefect_ui" if name == "prefect" else name, "")
        if name == "postgres":
            where = f"{HOST}:{stack.ports['postgres']}"
        print(f"{name:9s} {'up' if healthy else 'DOWN':5s} pid={rec.get('pid', '-')!s:8s} {where}")
        ok &= healthy
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--state", default=str(DEFAULT_STATE), help="state folder (default: %(default)s)")
    parser.add_argument("--base-port", type=int, default=None,
                        help=f"first port; services use base+{PORT_OFFSETS} (default {DEFAULT_BASE_PORT}, "
                             "or the one the state folder last used)")
    args = parser.parse_args(argv)
    try:
        stack = Stack(args.state, args.base_port)
        if args.command == "up":
            _print_up(stack.up())
        elif args.command == "down":
            stack.down()
            print(f"stack in {stack.state} stopped")
        else:
            return 0 if _print_status(stack) else 1
    except StackError as err:
        print(f"stack: {err}", file=sys.stderr)
        if args.command == "up":
            print(f"(services that did come up keep running; stop them with: {Path(sys.argv[0]).name} down"
                  f" --state {args.state})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
