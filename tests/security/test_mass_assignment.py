"""Mass assignment: fields a client may not set are refused (422) and nothing is published."""

import httpx
import pytest

from tests.security.helpers import tap_everything
from tests.support.api import create_item, sign_up, unique_email

FORBIDDEN_FIELDS = {
    "owner_id": 1,
    "id": 1,
    "hashed_password": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
    "is_active": False,
    "created_at": "2020-01-01T00:00:00Z",
}


@pytest.mark.parametrize("field", sorted(FORBIDDEN_FIELDS))
async def test_a_field_the_client_may_not_set_is_422_everywhere_and_nothing_is_published(
    http: httpx.AsyncClient, field: str
) -> None:
    client = await sign_up(http)
    item_id = (await create_item(http, client)).json()["id"]
    extra = {field: FORBIDDEN_FIELDS[field]}
    async with tap_everything() as tap:
        answers = [
            await http.post(
                "/api/v1/users", json={"email": unique_email(), "password": "long enough 1", "full_name": "M", **extra}
            ),
            await http.patch("/api/v1/users/me", json={"full_name": "M", **extra}, headers=client.headers),
            await http.post("/api/v1/items", json={"title": "t", **extra}, headers=client.headers),
            await http.patch(f"/api/v1/items/{item_id}", json={"title": "t", **extra}, headers=client.headers),
        ]
        assert await tap.count() == 0
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert field in answer.text
