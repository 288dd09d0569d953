"""Permissions on experiments and registered models, ordered NO_PERMISSIONS < READ < EDIT < MANAGE."""

from __future__ import annotations

import enum

from trackops.errors import UsageError


class Permission(enum.IntEnum):
    NO_PERMISSIONS = 0
    READ = 1
    EDIT = 2  # read, log, update, tag
    MANAGE = 3  # edit, delete, and grant permissions on the resource

    @classmethod
    def parse(cls, value: str | Permission) -> Permission:
        if isinstance(value, Permission):
            return value
        text = str(value).strip().upper()
        if text == "USE":  # MLflow's USE tier reads the resource
            return cls.READ
        try:
            return cls[text]
        except KeyError:
            raise UsageError(f"unknown permission {value!r}",
                             hint="use READ, EDIT, MANAGE or NO_PERMISSIONS") from None

    def allows(self, needed: Permission) -> bool:
        return self >= needed


NAMES = [p.name for p in Permission]
DEFAULT_PERMISSION = Permission.READ


def can_use(permission: Permission) -> bool:
    """MLflow's ``can_use``: its USE tier sits between READ and EDIT, so of trackops' permissions only
    EDIT and MANAGE have it (what ``users/permissions/get`` answers as ``allowed``)."""
    return permission >= Permission.EDIT


# The names MLflow 3.17's per-user grant API accepts on one resource, and what trackops stores for
# them: it has no USE tier (USE reads, as `Permission.parse` takes it) and no DENY beside
# NO_PERMISSIONS, which already means "nothing on this resource, whatever the default".
GRANTABLE = {"READ": Permission.READ, "USE": Permission.READ, "EDIT": Permission.EDIT,
             "MANAGE": Permission.MANAGE, "DENY": Permission.NO_PERMISSIONS}
