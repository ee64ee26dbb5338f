"""The inspector's web service: REST + OpenAI-compatible API, a web page, Prometheus metrics.

`create_app(cfg, model_uri)` builds the FastAPI app; `server.run` serves it with uvicorn.
"""
from components.serving.app import create_app

__all__ = ["create_app"]
