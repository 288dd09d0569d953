"""MLflow 3.17's per-user grant API (``users/permissions/grant``, ``revoke``, ``get``) mapped onto
trackops' permission tables: which resource types and permissions it names, which of them trackops
stores, and the checks of a new grant with MLflow's messages, in MLflow's order
(``mlflow/server/auth/sqlalchemy_store.grant_user_resource_permission``).
"""

from __future__ import annotations

from trackops.auth.permissions import GRANTABLE, Permission
from trackops.auth.requested import is_ascii_id
from trackops.auth.users import EXPERIMENT, REGISTERED_MODEL
from trackops.errors import InvalidParameterValue

# MLflow's resource types (permissions.TYPE) and whether a grant may name one resource or only "*".
WILDCARD_ONLY = frozenset({"run", "trace", "assessment", "logged_model", "review_queue", "registered_model_version",
                           "prompt_version", "scorer_version", "mcp_server_version", "workspace"})
VALID_TYPES = tuple(sorted(WILDCARD_ONLY | {"experiment", "registered_model", "prompt", "scorer", "gateway_secret",
                                            "gateway_endpoint", "gateway_model_definition", "mcp_server"}))
# What trackops stores: a prompt is a registered model (tagged mlflow.prompt.is_prompt), so its
# grants are the registered model's.
STORED_KIND = {"experiment": EXPERIMENT, "registered_model": REGISTERED_MODEL, "prompt": REGISTERED_MODEL}
# The types MLflow's get / non-admin check resolves (its _RESOURCE_WORKSPACE_FETCHER) that trackops
# stores; MLflow resolves no "prompt" there, so get and a non-admin grant on one are a 400 in MLflow too.
RESOLVED_KIND = {"experiment": EXPERIMENT, "registered_model": REGISTERED_MODEL}
MLFLOW_PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS", "DENY")


def check_type(resource_type: str) -> None:
    if resource_type == "workspace":
        raise InvalidParameterValue(
            "resource_type 'workspace' is not supported by the per-user permission convenience APIs. "
            "Use set_workspace_permission / delete_workspace_permission for workspace-wide grants.")
    if resource_type not in VALID_TYPES:
        raise InvalidParameterValue(f"Invalid resource type '{resource_type}'. "
                                    f"Valid resource types are: {VALID_TYPES}")


def unsupported(resource_type: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"resource_type '{resource_type}' is not supported by the per-user "
                                 "permission convenience APIs.")


def resolved_kind(resource_type: str) -> str:
    """The stored kind of a type that get and a non-administrator's grant resolve, or MLflow's 400."""
    check_type(resource_type)
    kind = RESOLVED_KIND.get(resource_type)
    if kind is None:
        raise unsupported(resource_type)
    return kind


def holds_no_grant(kind: str, resource_id: str) -> bool:
    """True for a resource id trackops stores no grant under: "*", or an experiment id that is no number."""
    return resource_id == "*" or (kind == EXPERIMENT and not is_ascii_id(resource_id))


def grant_target(resource_type: str, resource_id: str, permission: str) -> tuple[str, Permission]:
    """(stored kind, stored permission) of a new grant, after MLflow's checks of it in its order,
    then what trackops can store."""
    check_type(resource_type)
    if resource_id != "*" and resource_type in WILDCARD_ONLY:
        raise InvalidParameterValue(f"Invalid resource_pattern '{resource_id}' for resource_type='{resource_type}'. "
                                    "This resource type supports only wildcard ('*') grants.")
    if permission not in MLFLOW_PERMISSIONS:
        raise InvalidParameterValue(f"Invalid permission '{permission}'. Valid permissions are: {MLFLOW_PERMISSIONS}")
    if permission not in GRANTABLE:
        raise InvalidParameterValue(f"Invalid permission '{permission}' for resource_type='{resource_type}'. "
                                    f"Resource-level grants accept only: {tuple(sorted(GRANTABLE))}.")
    kind = STORED_KIND.get(resource_type)
    if kind is None:
        raise unsupported(resource_type)
    if resource_id == "*":
        raise InvalidParameterValue(f"Wildcard ('*') grants are not supported: trackops grants a permission "
                                    f"on one {resource_type.replace('_', ' ')} at a time.")
    if kind == EXPERIMENT and not is_ascii_id(resource_id):
        raise InvalidParameterValue(f"Invalid experiment ID: '{resource_id}'")
    return kind, GRANTABLE[permission]
