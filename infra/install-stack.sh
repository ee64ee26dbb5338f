#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the loopback stack (infra/stack.py, `make stack-up`, tests/stack).
# Only the binaries are used: stack.py makes its own cluster (initdb + pg_ctl) in its state folder,
# so the package's system cluster/service is never started (no systemd needed).
# The rest of the stack (moto S3, MLflow, Prefect) is Python: pyproject.toml's `stack` extra.
exec bash "$(dirname "$0")/apt-install.sh" postgresql "/usr/lib/postgresql/*/bin/initdb" "tests/stack fails"
