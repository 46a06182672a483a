"""One plain async function per command: (connection, envelope) -> Result. They never commit."""

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.commands import CommandName
from worker.envelope import Envelope
from worker.handlers import imports, items, users
from worker.handlers.result import Result

Handler = Callable[[AsyncConnection, Envelope], Awaitable[Result]]

HANDLERS: dict[CommandName, Handler] = {
    CommandName.USER_CREATE: users.create_user,
    CommandName.USER_UPDATE: users.update_user,
    CommandName.USER_DELETE: users.delete_user,
    CommandName.ITEM_CREATE: items.create_item,
    CommandName.ITEM_UPDATE: items.update_item,
    CommandName.ITEM_DELETE: items.delete_item,
    CommandName.ITEM_IMPORT: imports.import_items,
}
