"""HTTP bodies. Unknown fields are refused; updates carry only what the caller sent."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.fields import Description, Email, FullName, Status, Title
from shared.models import CommandStatus

Password = str  # checked by the Field constraints where it is used


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(Body):
    email: Email
    password: Password = Field(min_length=8, max_length=128)
    full_name: FullName


class UserUpdateMe(Body):
    """The password is changed with PUT /users/me/password, which asks for the current one."""

    email: Email | None = None
    full_name: FullName | None = None


class PasswordChange(Body):
    """PUT /users/me/password: the current password proves it is the user, not just their token."""

    current_password: Password = Field(min_length=1, max_length=128)
    new_password: Password = Field(min_length=8, max_length=128)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str
    is_active: bool | None
    created_at: datetime | None
    updated_at: datetime | None


class ItemCreate(Body):
    title: Title
    description: Description | None = None
    status: Status = Status.PENDING


class ItemUpdate(Body):
    title: Title | None = None
    description: Description | None = None
    status: Status | None = None


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str | None
    status: str
    owner_id: int
    owner_full_name: str
    created_at: datetime | None
    updated_at: datetime | None


class ItemsPage(BaseModel):
    data: list[ItemRead]
    count: int
    next_cursor: str | None = None


class ItemStats(BaseModel):
    """The caller's items counted per status."""

    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    cancelled: int = 0
    total: int = 0


class Accepted(BaseModel):
    """202: the command is on the bus; follow Location to learn its outcome."""

    command_id: uuid.UUID
    status: CommandStatus = CommandStatus.PENDING


class CommandRead(BaseModel):
    command_id: uuid.UUID
    name: str | None = None
    status: CommandStatus
    code: str | None = None
    detail: str | None = None
    resource_id: int | None = None
    applied_at: datetime | None = None


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"
