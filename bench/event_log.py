"""The price of the event log (issue 22): each measure run with the log bound to the events exchange
and with it unbound, alternating which goes first, three times each; the medians side by side.

Unbinding is the only difference: the worker relays the same events either way, and the stream then
gets no appends. The ratio is bound / unbound (target ≥ 0.90×)."""

import statistics
from collections.abc import Awaitable, Callable

import aio_pika

from bench.cpu import Meter, per_unit
from bench.report import Table
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.event_log import EVENT_LOG_BINDING_KEY, EVENT_LOG_NAME

RUNS = 3
Measure = Callable[[], Awaitable[tuple[float, int]]]  # (rate, rows applied)


async def bind_log(rabbit_url: str, bound: bool) -> None:
    """Bind the event log to the events exchange (as the worker's topology does), or unbind it."""
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel()
        log = await channel.get_queue(EVENT_LOG_NAME, ensure=False)
        if bound:
            await log.bind(EVENTS_EXCHANGE_NAME, EVENT_LOG_BINDING_KEY)
        else:
            await log.unbind(EVENTS_EXCHANGE_NAME, EVENT_LOG_BINDING_KEY)


async def price(table: Table, rabbit_url: str, meter: Meter, measures: dict[str, tuple[Measure, str]]) -> None:
    """Add a row per measure (name -> (measure, unit)): its median with the log, beside without; and
    the CPU per row of each, which other loads on the machine disturb less than the rates (except
    RabbitMQ's and PostgreSQL's, when others use the same servers)."""
    for name, (measure, unit) in measures.items():
        rates: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, dict[str, float]] = {True: {}, False: {}}
        rows = {True: 0, False: 0}
        for run in range(RUNS):
            for bound in (True, False) if run % 2 == 0 else (False, True):
                await bind_log(rabbit_url, bound)
                meter.start()
                rate, applied = await measure()
                for group, ms in meter.stop().items():
                    cpu[bound][group] = cpu[bound].get(group, 0.0) + ms
                rates[bound].append(rate)
                rows[bound] += applied
        await bind_log(rabbit_url, True)
        with_log, without = statistics.median(rates[True]), statistics.median(rates[False])
        table.add(
            f"{name}, event log bound", with_log, unit,
            baseline="log unbound, same run", baseline_value=without, target="≥ 0.90×",
        )  # fmt: skip
        runs = ", ".join(f"{rate:,.0f}" for rate in rates[True])
        table.notes.append(f"{name}: with the log {runs}; without {', '.join(f'{r:,.0f}' for r in rates[False])}")
        for bound, label in ((True, "with the log"), (False, "without")):
            table.notes.append(f"{name} CPU ms per row {label}: {per_unit(cpu[bound], rows[bound])}")
