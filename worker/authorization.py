"""Who may act on whose objects. The worker decides again; it does not trust the gateway for this."""

from shared.contracts.commands import CommandName
from worker.envelope import Envelope


def may_act_for(envelope: Envelope, owner_id: int) -> bool:
    """May this command's actor change what belongs to user `owner_id`?

    A user actor (asserted by the gateway) acts only on their own objects. Services act on nobody's
    objects until granted (see the security issue: grants by command type and owner).
    """
    actor = envelope.actor
    return actor.kind == "user" and actor.user_id == owner_id


def may_create_users(envelope: Envelope) -> bool:
    """Sign-up comes through the gateway (anonymous or a user); services need a grant."""
    return envelope.actor.kind in ("anonymous", "user") or _service_granted(envelope, CommandName.USER_CREATE)


def _service_granted(envelope: Envelope, name: CommandName) -> bool:
    return False
