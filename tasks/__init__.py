"""Thin Prefect task wrappers around components: retries, caching, artifacts. No logic."""
