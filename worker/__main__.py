"""`python -m worker` runs the d1cdc CLI."""

from worker.cli.main import run

run()
