"""The pipeline of one partition's batch: decode, the unit of work, then what follows a commit.

After the commit, in this order: the batch's events go to the relay (so they leave in commit order
whatever fails next), dead letters are published (confirmed together), poison messages are recorded,
and each publisher is answered. The transport acknowledges the batch only when this returns: an
exception leaves it unacknowledged, to be handled again, and the inbox answers what already committed.
"""

import asyncio
import logging
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from shared import tracing
from shared.contracts.outcomes import Outcome
from shared.models import CommandStatus
from shared.settings import Settings
from worker.decode import decode
from worker.envelope import Envelope, PoisonMessage
from worker.inbox import poison_row
from worker.metrics import observe_batch, observe_poison
from worker.outbound import Outbound
from worker.relay import PartitionRelay
from worker.transient import is_transient
from worker.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class Pipeline:
    """What happens to one partition's batch between its delivery and its acknowledgement."""

    def __init__(
        self, partition: int, settings: Settings, unit_of_work: UnitOfWork, outbound: Outbound, relay: PartitionRelay
    ) -> None:
        self.partition = partition
        self.settings = settings
        self.unit_of_work = unit_of_work
        self.outbound = outbound
        self.relay = relay

    async def handle(self, batch: list[AbstractIncomingMessage]) -> None:
        """Apply the batch and answer for every message of it; raise to have it handled again."""
        await self._relay_predecessors_events()
        envelopes: list[tuple[AbstractIncomingMessage, Envelope[Any]]] = []
        poison: list[tuple[AbstractIncomingMessage, PoisonMessage]] = []
        for message in batch:
            tracing.received(message, self.partition)  # a span in the publisher's trace, when tracing is on
            try:
                envelopes.append((message, self._decode(message)))
            except PoisonMessage as error:
                poison.append((message, error))
        relayed = self.relay.take_relayed()  # the relay may publish more while we apply
        try:
            applied = await self.unit_of_work.apply([envelope for _, envelope in envelopes], relayed)
        except BaseException:
            self.relay.give_back(relayed)
            self.relay.unflushed = True  # a commit may have happened: its events go out first, from the outbox
            raise
        if not applied.marked:
            self.relay.give_back(relayed)
        if applied.unrelayed:  # a commit may have happened unseen: its events go out first, from the outbox
            self.relay.unflushed = True
        self.relay.after_commit(applied.events)  # before anything below can fail: commit order holds
        answered = [(message, envelope, outcome) for (message, envelope), outcome in
                    zip(envelopes, applied.outcomes, strict=True)]  # fmt: skip
        # The batch's dead letters are confirmed together: one wait for the broker, not one per command.
        await asyncio.gather(*(
            self.outbound.dead_letter(message, applied.reasons.get(envelope.command_id, outcome.detail or ""))
            for message, envelope, outcome in answered
            if outcome.status == CommandStatus.DEAD_LETTERED
        ))  # fmt: skip
        replies = [(message.user_id, envelope.reply_to, outcome) for message, envelope, outcome in answered]
        for message, refused in poison:
            await self.outbound.dead_letter(message, refused.reason)
            observe_poison(message, refused.reason)
            if refused.command_id is not None:
                replies.append((message.user_id, message.reply_to, await self._record_poison(message, refused)))
        await self.outbound.reply_all(replies)
        observe_batch(answered)

    async def _relay_predecessors_events(self) -> None:
        """Newly active on this partition (or after a failure): relay what was committed before, first."""
        if not self.relay.unflushed:
            return
        try:
            await self.relay.flush()
        except Exception as error:
            if not is_transient(error):
                raise
            # The database is away: the batch's own retries follow (and WORKER_TRANSIENT_RETRY_LIMIT_S
            # bounds them); the relay stays unflushed, so its events still go out first, in order.
            log.warning("partition %d: outbox not relayed before the batch (%r)", self.partition, error)

    def _decode(self, message: AbstractIncomingMessage) -> Envelope[Any]:
        return decode(
            routing_key=message.routing_key or "",
            message_id=message.message_id,
            headers=dict(message.headers or {}),
            body=message.body,
            bus_user=message.user_id,
            reply_to=message.reply_to,
            gateway_bus_user=self.settings.gateway_bus_user,
            grants=self.settings.service_grants,
            partition=self.partition,
            priority=message.priority,
        )

    async def _record_poison(self, message: AbstractIncomingMessage, refused: PoisonMessage) -> Outcome:
        """The command's outcome says why it can never be applied (a publisher polls or gets it on reply_to)."""
        assert refused.command_id is not None
        actor = str(refused.actor) if refused.actor else f"service:{message.user_id or 'unknown'}"
        return await self.unit_of_work.record(poison_row(refused.command_id, refused.name, actor, refused.reason))
