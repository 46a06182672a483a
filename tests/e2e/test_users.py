"""Sign-up, log-in and the caller's own account, through the real gateway, broker and worker."""

import httpx

from tests.support.api import WAIT, create_item, log_in, sign_up, unique_email


async def test_sign_up_log_in_and_read_me(http: httpx.AsyncClient) -> None:
    email = unique_email("Mixed.Case")
    client = await sign_up(http, email)
    me = await http.get("/api/v1/users/me", headers=client.headers)
    assert me.status_code == 200
    assert me.json()["email"] == email.lower()  # stored lower-cased
    assert "hashed_password" not in me.json()
    assert await log_in(http, email.upper())  # compared lower-cased


async def test_sign_up_without_wait_is_accepted_with_a_command_location(http: httpx.AsyncClient) -> None:
    body = {"email": unique_email(), "password": "long enough password", "full_name": "Ann"}
    response = await http.post("/api/v1/users", json=body)
    assert response.status_code == 202
    command_id = response.json()["command_id"]
    assert response.headers["Location"] == f"/api/v1/commands/{command_id}"


async def test_second_sign_up_with_the_same_email_is_rejected_and_the_worker_goes_on(
    http: httpx.AsyncClient,
) -> None:
    email = unique_email()
    await sign_up(http, email)
    again = await http.post(
        "/api/v1/users",
        json={"email": email.upper(), "password": "another password", "full_name": "B"},
        headers=WAIT,
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["code"] == "email_taken"
    assert await sign_up(http)  # the worker keeps consuming


async def test_update_me_changes_only_what_was_sent(http: httpx.AsyncClient) -> None:
    client = await sign_up(http)
    response = await http.patch("/api/v1/users/me", json={"full_name": "New Name"}, headers={**client.headers, **WAIT})
    assert response.status_code == 200
    assert response.json()["full_name"] == "New Name"
    assert response.json()["email"] == client.email


async def test_deleting_a_user_deletes_their_items_and_their_token(http: httpx.AsyncClient, primary) -> None:  # type: ignore[no-untyped-def]
    client = await sign_up(http)
    for title in ("one", "two"):
        assert (await create_item(http, client, title=title)).status_code == 201
    deleted = await http.delete("/api/v1/users/me", headers={**client.headers, **WAIT})
    assert deleted.status_code == 204
    assert await primary.fetchval("SELECT count(*) FROM item WHERE owner_id = $1", client.id) == 0
    token = {"X-Consistency-Token": deleted.headers["X-Consistency-Token"]}
    assert (await http.get("/api/v1/users/me", headers={**client.headers, **token})).status_code == 401


async def test_login_with_a_wrong_password_or_unknown_email_is_401(http: httpx.AsyncClient) -> None:
    client = await sign_up(http)
    for username, password in ((client.email, "wrong password"), (unique_email(), "whatever123")):
        response = await http.post("/api/v1/login/access-token", data={"username": username, "password": password})
        assert response.status_code == 401
