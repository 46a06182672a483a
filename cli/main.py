"""The `opengovfood` entry point: db, bus, health, deadletters, events, import."""

import json
import urllib.error
import urllib.request
from importlib.metadata import version
from typing import Annotated
from urllib.parse import urlparse

import typer

from cli.bus import bus_app
from cli.db import db_app
from cli.deadletters import deadletters_app
from cli.events import events_app
from cli.imports import imports_app

app = typer.Typer(
    help="Operate OpenGov-Food: database, bus, health, dead letters, events, imports.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(bus_app, name="bus")
app.add_typer(deadletters_app, name="deadletters")
app.add_typer(events_app, name="events")
app.add_typer(imports_app, name="import")


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"opengovfood {version('opengovfood')}")
        raise typer.Exit()


@app.callback()
def options(
    _version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Operate OpenGov-Food: database, bus, health, dead letters, events, imports."""


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    """Status and body of a GET; an HTTP error status is an answer too."""
    if urlparse(url).scheme not in ("http", "https"):
        raise typer.BadParameter(f"not an http(s) URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) only, checked above)
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@app.command()
def health(
    url: Annotated[str, typer.Option(envvar="GATEWAY_URL", help="the gateway's base URL")] = "http://127.0.0.1:8000",
    timeout: Annotated[float, typer.Option(help="seconds")] = 5.0,
) -> None:
    """The gateway's readiness (/health/ready): exit 0 when ready, 1 otherwise."""
    try:
        status, body = _get(f"{url.rstrip('/')}/health/ready", timeout)
    except (urllib.error.URLError, OSError) as error:
        typer.echo(f"unreachable: {error}", err=True)
        raise typer.Exit(1) from None
    try:
        typer.echo(json.dumps(json.loads(body), indent=2))
    except ValueError:
        typer.echo(body.decode(errors="replace"))
    raise typer.Exit(0 if status == 200 else 1)


def main() -> None:
    app(prog_name="opengovfood")


if __name__ == "__main__":
    main()
