"""Serve the monthly deployment: `monthly_retrain` at 02:00 on the first of every month.

Needs a Prefect server (PREFECT_API_URL). The scheduled run takes the drop waiting in
`--drop` (default: <workdir>/incoming/<YYYY-MM>), labelled with the current month.
"""
from __future__ import annotations

import datetime as dt

import typer

from flows.monthly_retrain import monthly_retrain

CRON = "0 2 1 * *"


def main(drop_root: str = typer.Option(".defectqa/incoming", help="Folder holding one sub-folder per month's drop."),
         name: str = typer.Option("monthly", help="Deployment name.")):
    """Register the deployment and serve it (Ctrl-C to stop)."""
    month = dt.date.today().strftime("%Y-%m")
    monthly_retrain.serve(name=name, cron=CRON, parameters={"drop_dir": f"{drop_root}/{month}", "month": month})


if __name__ == "__main__":
    typer.run(main)
