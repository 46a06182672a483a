"""Declarative base with a naming convention that leaves the seed's explicit names alone."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Only unnamed constraints get a generated name. There is deliberately no "ck" entry: a
# convention like "ck_%(table_name)s_%(constraint_name)s" would rename check_item_status.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
