"""`opengovfood import items FILE --owner-id N`: publish a CSV or JSON Lines file as import chunks.

Publishes straight onto the bus with RABBIT_URL's user acting as user N (like the gateway: that
user must be GATEWAY_BUS_USER, or hold a service grant for item.import), shows a progress bar with
rows/s, then follows the import in the database (DATABASE_URL) and prints a summary. It fails over as
the services do: to the next broker of RABBIT_URL and RABBIT_FAILOVER_HOSTS when one is down or dies
midway, sending the chunks not confirmed again (each is applied once).
"""

import asyncio
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from cli import repository
from shared.brokers import NoBroker
from shared.db import create_engine
from shared.importer import SourceError, count, format_of, publish_import
from shared.models import ImportState
from shared.publishing import NotConfirmed, Publisher
from shared.settings import get_settings

FAILOVER_S = 60.0  # how long a chunk is sent again while the brokers fail over (shared/importer.py)
imports_app = typer.Typer(help="Bulk imports through the bus.", no_args_is_help=True)
console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]:>9,.0f} rows/s"),
        TimeElapsedColumn(),
        console=console,
    )


async def _follow(import_id: uuid.UUID, timeout_s: float, progress: Progress, rows: int) -> Any:
    """Poll the import job on the primary until it is completed (or the timeout)."""
    settings = get_settings()
    engine = create_engine(settings.database_url, settings)
    task = progress.add_task("applied ", total=rows, rate=0.0)
    started, job = time.monotonic(), None
    try:
        while time.monotonic() - started < timeout_s:
            async with engine.connect() as conn:
                job = await repository.import_job(conn, import_id)
            if job is not None:
                done = job.applied + job.rejected
                progress.update(task, completed=done, rate=done / max(time.monotonic() - started, 1e-6))
                if job.state == ImportState.COMPLETED:
                    break
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
    return job


async def _run(path: Path, owner_id: int, wait: bool, timeout_s: float) -> int:
    settings = get_settings()
    fmt = format_of(path)
    rows, _ = await asyncio.to_thread(count, path, fmt)
    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task("published", total=rows, rate=0.0)

        def advance(count: int) -> None:
            progress.advance(task, count)
            done = progress.tasks[task].completed
            progress.update(task, rate=done / max(time.monotonic() - started, 1e-6))

        publisher = Publisher(settings.broker_urls, "opengovfood-import")
        try:
            published = await publish_import(
                publisher, path, fmt, owner_id=owner_id, retry_s=FAILOVER_S, on_progress=advance
            )
        finally:
            await publisher.close()
        elapsed = time.monotonic() - started
        job = await _follow(published.import_id, timeout_s, progress, rows) if wait else None
    total_s = time.monotonic() - started
    console.print(f"import {published.import_id}: {published.rows:,} rows in {published.chunks:,} chunks")
    console.print(f"published in {elapsed:.1f} s ({published.rows / max(elapsed, 1e-6):,.0f} rows/s)")
    if job is None:
        console.print("not followed: see GET /api/v1/imports/{id}" if not wait else "[red]no progress seen[/red]")
        return 0 if not wait else 1
    console.print(
        f"{job.state}: {job.applied:,} applied, {job.rejected:,} rejected in {total_s:.1f} s "
        f"({(job.applied + job.rejected) / max(total_s, 1e-6):,.0f} rows/s end to end)"
    )
    for error in job.errors[:10]:
        console.print(f"  row {error['row']}: {error['error']}")
    if job.rejected > len(job.errors[:10]):
        console.print(f"  … {job.rejected - len(job.errors[:10]):,} more rejected rows (first {len(job.errors)} kept)")
    return 0 if job.state == ImportState.COMPLETED else 1


@imports_app.callback()
def imports() -> None:
    """Bulk imports through the bus."""


@imports_app.command("items")
def import_items(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a .csv or .jsonl file")],
    owner_id: Annotated[int, typer.Option("--owner-id", min=1, help="the user who will own the items")],
    wait: Annotated[bool, typer.Option(help="follow the import until it is completed")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to follow the import")] = 600.0,
) -> None:
    """Import items from FILE for user --owner-id."""
    try:
        code = asyncio.run(_run(file, owner_id, wait, timeout))
    except SourceError as error:
        console.print(f"[red]cannot import {file}: {error}[/red]")
        raise typer.Exit(2) from None
    except (NotConfirmed, NoBroker) as error:
        console.print(f"[red]not every chunk was confirmed (some may be applied): {error}[/red]")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


if __name__ == "__main__":
    imports_app()
