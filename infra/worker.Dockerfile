# A Prefect worker image holding the project, installed the same way as `make setup`.
FROM python:3.11-slim
WORKDIR /app
COPY requirements/ requirements/
# torch first, in its own call, then used as constraints for every later call (as in the Makefile).
RUN pip install --no-cache-dir -r requirements/torch.txt \
 && pip install --no-cache-dir -c requirements/torch.txt -r requirements/main.txt "dvc-s3"
# params.yaml carries the server settings that are not env vars (paths.dvc_remote: s3://dvc/defectqa).
COPY pyproject.toml README.md params.yaml ./
COPY components/ components/
COPY tasks/ tasks/
COPY flows/ flows/
RUN pip install --no-cache-dir -c requirements/torch.txt --no-deps -e .
