"""What one gateway process holds for its whole life, set up in gateway/app.py's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a record of what the lifespan built: whoever holds one needs none of these modules
    from gateway.infrastructure.bus import CommandBus
    from gateway.infrastructure.consistency import Reads
    from gateway.infrastructure.limits import RateLimits
    from gateway.infrastructure.recent_users import RecentUsers
    from gateway.infrastructure.security import Passwords
    from gateway.infrastructure.status import StatusProbe
    from shared.settings import Settings


@dataclass
class Services:
    """What one gateway process holds for its whole life (set up in the lifespan)."""

    settings: Settings
    bus: CommandBus
    reads: Reads
    passwords: Passwords
    status: StatusProbe
    users: RecentUsers
    limits: RateLimits
