# A Prefect worker image holding the project, installed the same way as `make setup`.
FROM python:3.11-slim
WORKDIR /app
COPY requirements/ requirements/
# torch first, in its own call, then the same pins for every later call (as in the Makefile).
RUN pip install --no-cache-dir -c requirements/constraints.txt torch torchvision
# params.yaml carries the server settings that are not env vars (paths.dvc_remote: s3://dvc/defectqa).
COPY pyproject.toml README.md params.yaml ./
COPY components/ components/
COPY tasks/ tasks/
COPY flows/ flows/
# The package's dependencies (pyproject.toml) + the stack extra (S3 remote for DVC, psycopg2), pinned.
RUN pip install --no-cache-dir -c requirements/constraints.txt -e ".[stack]"
