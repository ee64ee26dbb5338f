"""Prefect flows (the monthly retraining) and the `defectqa` CLI."""
