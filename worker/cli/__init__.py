"""The `d1cdc` command line (Typer). `main.run` is the console script."""
