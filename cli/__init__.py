"""`opengovfood`: the operator's command line (Typer)."""
