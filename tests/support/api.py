"""Plain helper functions for talking to the gateway like a client would."""

import uuid
from dataclasses import dataclass

import httpx

WAIT = {"Prefer": "wait=10"}
PASSWORD = "correct horse battery"


@dataclass
class Client:
    """A signed-up, logged-in user."""

    id: int
    email: str
    headers: dict[str, str]


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.org"


async def sign_up(http: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD) -> Client:
    email = email or unique_email()
    response = await http.post(
        "/api/v1/users", json={"email": email, "password": password, "full_name": "Test User"}, headers=WAIT
    )
    assert response.status_code == 201, response.text
    token = await log_in(http, email, password)
    return Client(id=response.json()["id"], email=email, headers={"Authorization": f"Bearer {token}"})


async def log_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await http.post("/api/v1/login/access-token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def create_item(http: httpx.AsyncClient, client: Client, **fields: object) -> httpx.Response:
    body = {"title": "an item", **fields}
    return await http.post("/api/v1/items", json=body, headers={**client.headers, **WAIT})
