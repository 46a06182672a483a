"""The `opengovfood` entry point: db, health, deadletters (and import, when installed)."""

import json
from typing import Annotated

import httpx
import typer

from cli.db import db_app
from cli.deadletters import deadletters_app

app = typer.Typer(help="Operate OpenGov-Food: database, health, dead letters, imports.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(deadletters_app, name="deadletters")

try:  # the import commands live in their own module (another issue); the CLI works without them
    from cli.imports import imports_app
except ImportError:  # pragma: no cover
    pass
else:
    app.add_typer(imports_app, name="import")


@app.command()
def health(
    url: Annotated[str, typer.Option(envvar="GATEWAY_URL", help="the gateway's base URL")] = "http://127.0.0.1:8000",
    timeout: Annotated[float, typer.Option(help="seconds")] = 5.0,
) -> None:
    """The gateway's readiness (/health/ready): exit 0 when ready, 1 otherwise."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/health/ready", timeout=timeout)
    except httpx.HTTPError as error:
        typer.echo(f"unreachable: {error}", err=True)
        raise typer.Exit(1) from None
    try:
        typer.echo(json.dumps(response.json(), indent=2))
    except ValueError:
        typer.echo(response.text)
    raise typer.Exit(0 if response.status_code == 200 else 1)


def main() -> None:
    app(prog_name="opengovfood")


if __name__ == "__main__":
    main()
