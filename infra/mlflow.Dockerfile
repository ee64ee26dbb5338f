# The official MLflow image lacks the PostgreSQL and S3 client libraries the server needs.
FROM ghcr.io/mlflow/mlflow:v3.17.2
RUN pip install --no-cache-dir psycopg2-binary boto3
