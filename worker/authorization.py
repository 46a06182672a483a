"""Who may act on whose objects. The worker decides again; it does not trust the gateway for this.

A user actor can only be asserted by the gateway's RabbitMQ user (the validated `user-id`
property, see worker/envelope.py). Any other publisher is a service and acts as itself, within the
grant configured for it in SERVICE_GRANTS (command names, owners, deactivation), which decode
attaches to the envelope.
"""

from typing import Any

from shared.contracts.commands import CommandName
from shared.settings import ServiceGrant
from worker.envelope import Envelope


def may_act_for(envelope: Envelope[Any], owner_id: int) -> bool:
    """May this command's actor change what belongs to user `owner_id`?

    A user actor acts only on their own objects; a service only with this command name granted
    and the owner among its granted owners ("*": any).
    """
    actor = envelope.actor
    if actor.kind == "user":
        return actor.user_id == owner_id
    grant = _grant(envelope, envelope.name)
    return grant is not None and (grant.owners == "*" or owner_id in grant.owners)


def may_create_users(envelope: Envelope[Any]) -> bool:
    """Sign-up comes through the gateway (anonymous or a user); services need a grant."""
    return envelope.actor.kind in ("anonymous", "user") or _grant(envelope, CommandName.USER_CREATE) is not None


def may_deactivate(envelope: Envelope[Any]) -> bool:
    """Only a service granted it may set `is_active`; an HTTP caller (a user actor) never may."""
    grant = _grant(envelope, CommandName.USER_UPDATE)
    return grant is not None and grant.may_deactivate


def _grant(envelope: Envelope[Any], name: CommandName) -> ServiceGrant | None:
    """The service's grant if it covers command `name`; None for users and ungranted services."""
    grant = envelope.grant if envelope.actor.kind == "service" else None
    return grant if grant is not None and name.value in grant.commands else None
