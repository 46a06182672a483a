"""HTTP bodies. Unknown fields are refused; updates carry only what the caller sent."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints
from pydantic_core import to_json

from shared.contracts.fields import TEXT, Description, Email, FullName, Password, Status, Title
from shared.contracts.outcomes import RowError
from shared.models import CommandStatus, ImportState

FormText = Annotated[str, StringConstraints(max_length=255, pattern=TEXT)]
ITEM_EXAMPLE: dict[str, JsonValue] = {
    "id": 7,
    "title": "Buy flour",
    "description": "2 kg, type 550",
    "status": "pending",
    "owner_id": 3,
    "owner_full_name": "Ada Lovelace",
    "created_at": "2026-11-29T10:15:00Z",
    "updated_at": None,
}
USER_EXAMPLE: dict[str, JsonValue] = {
    "id": 3,
    "email": "ada@example.org",
    "full_name": "Ada Lovelace",
    "is_active": True,
    "created_at": "2026-11-29T10:00:00Z",
    "updated_at": None,
}
COMMAND_ID_EXAMPLE = "3f0c2b1e-7d4a-4c8e-9a51-2b6f0e9d1c44"


def examples(*values: dict[str, JsonValue]) -> ConfigDict:
    """A model config whose JSON schema shows these examples."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


def _no_default(schema: dict[str, JsonValue]) -> None:
    schema.pop("default", None)


def omissible() -> Any:
    """An update field that may be left out but not sent as null (its column is NOT NULL)."""
    return Field(None, json_schema_extra=_no_default)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(Body):
    model_config = examples({"email": "ada@example.org", "password": "correct horse battery", "full_name": "Ada"})

    email: Email
    password: Password = Field(min_length=8)
    full_name: FullName


class UserUpdateMe(Body):
    """The password is changed with PUT /users/me/password, which asks for the current one."""

    model_config = examples({"full_name": "Ada King"})

    email: Email = omissible()
    full_name: FullName = omissible()


class PasswordChange(Body):
    """PUT /users/me/password: the current password proves it is the user, not just their token."""

    model_config = examples({"current_password": "correct horse battery", "new_password": "battery staple horse"})

    current_password: Password = Field(min_length=1)
    new_password: Password = Field(min_length=8)


class LoginForm(BaseModel):
    """The OAuth2 password grant (RFC 6749 §4.3) as a form: the username is the email."""

    model_config = examples({"username": "ada@example.org", "password": "correct horse battery"})

    grant_type: Annotated[str | None, Field(pattern="^password$")] = None
    username: Annotated[FormText, Field(min_length=1)]
    password: Password
    scope: FormText = ""
    client_id: FormText | None = None
    client_secret: FormText | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [USER_EXAMPLE]})

    id: int
    email: str
    full_name: str
    is_active: bool | None
    created_at: datetime | None
    updated_at: datetime | None


class ItemCreate(Body):
    model_config = examples({"title": "Buy flour", "description": "2 kg, type 550", "status": "pending"})

    title: Title
    description: Description | None = None
    status: Status = Status.PENDING


class ItemUpdate(Body):
    model_config = examples({"status": "completed"})

    title: Title = omissible()
    description: Description | None = None
    status: Status = omissible()


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [ITEM_EXAMPLE]})

    id: int
    title: str
    description: str | None
    status: str
    owner_id: int
    owner_full_name: str
    created_at: datetime | None
    updated_at: datetime | None


def item_json(row: Any) -> bytes:
    """An item row (repository.ITEM_COLUMNS) as ItemRead's JSON, without validating it into the model
    first (the row comes from our own query; tests/unit/test_gateway_parts.py checks they agree)."""
    return to_json(row._asdict())


class ItemsPage(BaseModel):
    model_config = examples({"data": [ITEM_EXAMPLE], "count": 1, "next_cursor": None})

    data: list[ItemRead]
    count: int
    next_cursor: str | None = None


class ItemStats(BaseModel):
    """The caller's items counted per status."""

    model_config = examples({"pending": 2, "in_progress": 1, "completed": 4, "cancelled": 0, "total": 7})

    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    cancelled: int = 0
    total: int = 0


class Accepted(BaseModel):
    """202: the command is on the bus; follow Location to learn its outcome."""

    model_config = examples({"command_id": COMMAND_ID_EXAMPLE, "status": "pending"})

    command_id: uuid.UUID
    status: CommandStatus = CommandStatus.PENDING


class CommandRead(BaseModel):
    model_config = examples(
        {
            "command_id": COMMAND_ID_EXAMPLE,
            "name": "item.create",
            "status": "applied",
            "code": "created",
            "resource_id": 7,
            "applied_at": "2026-11-29T10:15:00Z",
        }
    )

    command_id: uuid.UUID
    name: str | None = None
    status: CommandStatus
    code: str | None = None
    detail: str | None = None
    resource_id: int | None = None
    applied_at: datetime | None = None


class AccessToken(BaseModel):
    model_config = examples({"access_token": "eyJhbGciOiJIUzI1NiJ9.…", "token_type": "bearer"})

    access_token: str
    token_type: str = "bearer"


class FieldError(BaseModel):
    """Where a request was invalid (`["body", "title"]`) and why."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An error as RFC 9457 application/problem+json; the members after `detail` appear where they apply."""

    model_config = examples(
        {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no such item"},
        {
            "type": "about:blank",
            "title": "Unprocessable Entity",
            "status": 422,
            "detail": "body.title: String should have at most 100 characters",
            "errors": [{"loc": ["body", "title"], "msg": "String should have at most 100 characters", "type": "x"}],
        },
    )

    type: str = Field("about:blank", description="A URI reference naming the kind of problem")
    title: str = Field(description="The HTTP status phrase")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What went wrong, in words")
    errors: list[FieldError] | None = Field(None, description="422: each invalid part of the request")
    code: str | None = Field(None, description="A rejected command's outcome code (email_taken, not_found, …)")
    command_id: uuid.UUID | None = Field(None, description="503 on a write: the command, which may still apply")
    import_id: uuid.UUID | None = Field(None, description="503 on an import: the import, parts of which may apply")


IMPORT_ID_EXAMPLE = "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b"


class ImportAccepted(BaseModel):
    """202: every chunk is on the bus; follow Location for the progress."""

    model_config = examples({"import_id": IMPORT_ID_EXAMPLE, "rows": 2, "chunks": 1, "state": "pending"})

    import_id: uuid.UUID
    rows: int
    chunks: int
    state: ImportState = ImportState.PENDING


class ImportRead(BaseModel):
    """An import's progress: `completed` once every chunk is applied."""

    model_config = examples(
        {
            "import_id": IMPORT_ID_EXAMPLE,
            "state": "completed",
            "total_chunks": 1,
            "chunks_done": 1,
            "applied": 1,
            "rejected": 1,
            "errors": [
                {"row": 3, "error": "status: Input should be 'pending', 'in_progress', 'completed' or 'cancelled'"}
            ],
            "created_at": "2026-11-29T10:15:00Z",
            "updated_at": "2026-11-29T10:15:01Z",
        }
    )

    import_id: uuid.UUID
    state: ImportState
    total_chunks: int | None = None
    chunks_done: int = 0
    applied: int = 0
    rejected: int = 0
    errors: list[RowError] = []
    created_at: datetime | None = None
    updated_at: datetime | None = None
