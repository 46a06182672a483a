"""The path of one `POST /api/v1/items` (with `Prefer: wait`) through our code, from the edge to the publish.

    RABBIT_URL=amqp://guest:guest@127.0.0.1:5672/<vhost> .venv/bin/python -m bench.write_path

It runs the gateway in this process on a scratch SQLite file (built by `alembic upgrade head`) with
one user, sends the request, and records every call into `gateway/` and `shared/` until the
publish: the stack at the publish (the calls one must follow from the edge to it) and every
function entered on the way (the stops a reader makes, side trips included), with their files.
The command it publishes names a user no worker knows: it ends rejected, or in a queue of <vhost>.
"""

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
USER_ID = 2_000_000_123  # no test database has it: the worker rejects the command, not_found
OURS = (str(ROOT / "gateway"), str(ROOT / "shared"))


def _name(frame: FrameType) -> str:
    return f"{Path(frame.f_code.co_filename).relative_to(ROOT)}:{frame.f_code.co_qualname}"


async def main() -> None:
    scratch = tempfile.mkdtemp()
    url = f"sqlite+aiosqlite:///{scratch}/path.db"
    os.environ.update({"DATABASE_URL": url, "READ_DATABASE_URL": "", "LOG_LEVEL": "warning"})
    os.environ.setdefault("SECRET_KEY", "a-scratch-secret-key-long-enough-for-hs256-0123456789")
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False
    await asyncio.to_thread(command.upgrade, config, "head")

    from gateway.app import create_app
    from gateway.infrastructure.security import create_access_token
    from shared.db import create_engine
    from shared.models import User
    from shared.settings import get_settings

    settings = get_settings()
    engine = create_engine(url, settings)
    hashed = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
    async with engine.begin() as conn:
        await conn.execute(User.__table__.insert().values(id=USER_ID, email="a@example.org", hashed_password=hashed,
                                                          full_name="A", is_active=True))  # fmt: skip
    await engine.dispose()
    token = create_access_token(USER_ID, hashed, settings)
    app = create_app(settings)
    stack_at_publish: list[str] = []
    entered: list[str] = []
    tracing = published = False

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal tracing, published
        if event != "call" or published or not frame.f_code.co_filename.startswith(OURS):
            return
        name = _name(frame)
        if name.endswith("Edge.__call__") and frame.f_locals.get("scope", {}).get("path") == "/api/v1/items":
            tracing = True
        if not tracing:
            return
        entered.append(name)
        if name.endswith("Publisher.publish"):
            tracing, published = False, True
            calls, caller = [], frame
            while caller is not None:
                if caller.f_code.co_filename.startswith(OURS):
                    calls.append(_name(caller))
                caller = caller.f_back  # type: ignore[assignment]
            stack_at_publish.extend(reversed(calls))

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            headers = {"Authorization": f"Bearer {token}", "Prefer": "wait=0.2"}
            await http.post("/api/v1/items", json={"title": "warm"}, headers=headers)  # imports, caches
            sys.setprofile(profile)
            response = await http.post("/api/v1/items", json={"title": "traced"}, headers=headers)
            sys.setprofile(None)
    # A coroutine's frame is entered again at each resumption: count each function once, in order.
    path = [name for name in stack_at_publish if "<" not in name]
    stops = list(dict.fromkeys(name for name in entered if "<" not in name))
    print(f"answer: {response.status_code}")
    print(f"stack at the publish: {len(path)} calls in {len({n.split(':')[0] for n in path})} files")
    for name in path:
        print(f"  {name}")
    print(f"functions entered before the publish: {len(stops)} in {len({n.split(':')[0] for n in stops})} files")
    for name in stops:
        print(f"  {name}")


if __name__ == "__main__":
    asyncio.run(main())
