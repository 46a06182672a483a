"""A reference model of the worker: commands applied one at a time, in the order the worker's
committed transactions saw them. The generated histories (tests/worker/test_histories.py) compare
the real worker with it.

It knows what the worker promises, nothing of how: the inbox answers a command id seen before
(another body under that id is refused), a dead letter seen in an earlier transaction is applied
anew, copies within one transaction are answered alike, the first command with an Idempotency-Key
takes it, and the rules of each command.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.commands import CommandName
from worker.envelope import Envelope

Answer = tuple[str, str]  # (status, code)
DEAD_LETTERED: Answer = ("dead_lettered", "dead_lettered")
KEY_REUSED: Answer = ("rejected", "idempotency_key_reused")
NOT_FOUND: Answer = ("rejected", "not_found")
STALE_ETAG = '"stale"'


@dataclass
class _Recorded:
    answer: Answer
    fingerprint: str | None
    key: tuple[uuid.UUID, str] | None  # the Idempotency-Key this command holds


@dataclass
class WorkerModel:
    users: dict[int, str]  # user id -> full_name
    items: dict[int, tuple[int, str]]  # item id -> (owner, title), for items that existed before the history
    refused_title: str  # a title the database refuses (a trigger), while `refusing`
    refusing: bool = True
    created: dict[uuid.UUID, tuple[int, str]] = field(default_factory=dict)  # create command -> (owner, title)
    signed_up: dict[uuid.UUID, tuple[str, str]] = field(default_factory=dict)  # user.create -> (email, full_name)
    emails: dict[str, int | uuid.UUID] = field(default_factory=dict)  # taken email -> user id (or its user.create)
    imported: list[tuple[int, str]] = field(default_factory=list)  # (owner, title) of each imported item
    chunks: set[tuple[uuid.UUID, int, int]] = field(default_factory=set)  # (import id, owner, seq) applied
    inbox: dict[uuid.UUID, _Recorded] = field(default_factory=dict)
    keys: dict[tuple[uuid.UUID, str], uuid.UUID] = field(default_factory=dict)
    events: list[tuple[Any, uuid.UUID]] = field(default_factory=list)  # (owner, command id), in commit order

    def transaction(self, envelopes: list[Envelope[Any]]) -> list[Answer]:
        """One committed transaction of the worker, with these deliveries in this order: each one's answer."""
        seen_now: set[uuid.UUID] = set()
        for envelope in envelopes:  # dead letters of earlier transactions are applied anew: their keys are free
            prior = self.inbox.get(envelope.command_id)
            if prior is not None and prior.answer == DEAD_LETTERED:
                del self.inbox[envelope.command_id]
                if prior.key is not None:
                    self.keys.pop(prior.key, None)
        answers = []
        for envelope in envelopes:
            recorded = self.inbox.get(envelope.command_id)
            if recorded is None and envelope.command_id not in seen_now:
                recorded = self._apply(envelope)
                self.inbox[envelope.command_id] = recorded
            seen_now.add(envelope.command_id)
            assert recorded is not None
            different = envelope.fingerprint and recorded.fingerprint and envelope.fingerprint != recorded.fingerprint
            answers.append(KEY_REUSED if different else recorded.answer)
        return answers

    def poison(self, command_id: uuid.UUID) -> None:
        """A message that can never be applied, naming a command id never seen before."""
        self.inbox.setdefault(command_id, _Recorded(DEAD_LETTERED, None, None))

    def _apply(self, envelope: Envelope[Any]) -> _Recorded:
        key = (envelope.idempotency_key, str(envelope.actor)) if envelope.idempotency_key else None
        if key is not None and self.keys.setdefault(key, envelope.command_id) != envelope.command_id:
            return _Recorded(KEY_REUSED, envelope.fingerprint, None)
        answer, owner = self._rules(envelope)
        if answer[0] == "applied" and owner is not None:
            self.events.append((owner, envelope.command_id))
        return _Recorded(answer, envelope.fingerprint, key)

    def _rules(self, envelope: Envelope[Any]) -> tuple[Answer, Any]:
        body, actor = envelope.body, envelope.actor.user_id
        if envelope.name == CommandName.USER_CREATE:  # anyone may sign up; its events are the new user's own
            if body.email in self.emails:
                return ("rejected", "email_taken"), 0
            self.emails[body.email] = envelope.command_id
            self.signed_up[envelope.command_id] = (body.email, body.full_name)
            return ("applied", "created"), envelope.command_id
        if envelope.name == CommandName.ITEM_CREATE:
            if body.owner_id not in self.users or actor != body.owner_id:
                return NOT_FOUND, 0
            if self.refusing and body.title == self.refused_title:
                return DEAD_LETTERED, 0
            self.created[envelope.command_id] = (body.owner_id, body.title)
            return ("applied", "created"), body.owner_id
        if envelope.name == CommandName.ITEM_IMPORT:
            return self._import(body, actor)
        if envelope.name in (CommandName.ITEM_UPDATE, CommandName.ITEM_DELETE):
            item = self.items.get(body.item_id)
            if item is None or item[0] != actor:
                return NOT_FOUND, 0
            if body.if_match == STALE_ETAG:
                return ("rejected", "precondition_failed"), 0
            if envelope.name == CommandName.ITEM_DELETE:
                del self.items[body.item_id]
                return ("applied", "deleted"), item[0]
            if self.refusing and body.title == self.refused_title:
                return DEAD_LETTERED, 0
            self.items[body.item_id] = (item[0], body.title)
            return ("applied", "updated"), item[0]
        if body.user_id not in self.users or actor != body.user_id:
            return NOT_FOUND, 0
        if envelope.name == CommandName.USER_UPDATE:
            self.users[body.user_id] = body.full_name
            return ("applied", "updated"), body.user_id
        del self.users[body.user_id]  # user.delete: their items (and their email) go with them
        self.emails = {email: user for email, user in self.emails.items() if user != body.user_id}
        self.items = {item_id: item for item_id, item in self.items.items() if item[0] != body.user_id}
        self.created = {command: item for command, item in self.created.items() if item[0] != body.user_id}
        self.imported = [item for item in self.imported if item[0] != body.user_id]
        return ("applied", "deleted"), body.user_id

    def _import(self, chunk: Any, actor: int | None) -> tuple[Answer, Any]:
        """A chunk: applied once per (import, owner, seq); rows of a missing owner are each rejected."""
        if actor != chunk.owner_id:
            return NOT_FOUND, 0
        key = (chunk.import_id, chunk.owner_id, chunk.seq)
        titles = [row["title"] for row in chunk.rows]
        exists = chunk.owner_id in self.users
        if key not in self.chunks and exists and self.refusing and self.refused_title in titles:
            return DEAD_LETTERED, 0  # the whole chunk: COPY is one statement
        created = key not in self.chunks and exists
        self.chunks.add(key)
        if not created:
            return ("applied", "created"), None  # a repeat, or every row rejected: nothing to announce
        self.imported += [(chunk.owner_id, title) for title in titles]
        return ("applied", "created"), chunk.owner_id
