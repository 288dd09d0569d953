"""Webhook URL checks as MLflow 3.17.2 makes them (SSRF protection), with its messages.

A webhook URL must use an allowed scheme (``https`` only, unless ``MLFLOW_WEBHOOK_ALLOWED_SCHEMES``
says otherwise, as in MLflow), name a host, and -- unless internal addresses are allowed
(``trackops serve --webhooks-allow-private`` or ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true``) -- every
address the host resolves to must be public: no loopback, private, link-local (cloud metadata),
CGNAT, multicast or reserved address, also when wrapped in an IPv6 transition form (IPv4-mapped,
6to4, NAT64).

The same resolution is used to connect (`resolve_for_delivery`): the sender connects to the
address checked here, never to a second lookup, so DNS rebinding between check and request has
nothing to exploit.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import urllib.parse

from trackops.errors import InvalidParameterValue

ALLOWED_SCHEMES_ENV = "MLFLOW_WEBHOOK_ALLOWED_SCHEMES"
ALLOW_PRIVATE_ENV = "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"
RESOLVE_TIMEOUT_S = 5.0
MAX_URL_LENGTH = 500  # the webhooks.url column
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_RESOLVING = threading.BoundedSemaphore(8)  # at most 8 lookups at once, as MLflow


def allowed_schemes(env: dict[str, str] | None = None) -> list[str]:
    """The schemes a webhook URL may use: ``MLFLOW_WEBHOOK_ALLOWED_SCHEMES`` (comma-separated) or https."""
    raw = (env if env is not None else os.environ).get(ALLOWED_SCHEMES_ENV)
    if raw is None:
        return ["https"]
    return [s.strip() for s in raw.split(",") if s.strip()]


def private_allowed_by_env(env: dict[str, str] | None = None) -> bool:
    """MLflow's switch: ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS`` set to true/1."""
    return (env if env is not None else os.environ).get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("true", "1")


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global address, looking through IPv6 forms that carry an IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    return ip.is_global


def validate_url(url: str, *, allow_private: bool, schemes: list[str] | None = None) -> None:
    """Refuse a URL MLflow refuses, with its message (`InvalidParameterValue`)."""
    if not url.strip():
        raise InvalidParameterValue(f"Webhook URL cannot be empty or just whitespace: {url!r}")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidParameterValue(f"Webhook URL must be at most {MAX_URL_LENGTH} characters long.")
    try:
        parsed = urllib.parse.urlparse(url)
        hostname = parsed.hostname
        parsed.port  # noqa: B018 - a bad port raises here, not at delivery
    except ValueError as exc:
        raise InvalidParameterValue(f"Invalid webhook URL {url!r}: {exc!r}") from None
    schemes = allowed_schemes() if schemes is None else schemes
    if parsed.scheme not in schemes:
        raise InvalidParameterValue(f"Invalid webhook URL scheme: {parsed.scheme!r}. "
                                    f"Allowed schemes are: {', '.join(schemes)}.")
    if not hostname:
        raise InvalidParameterValue(f"Webhook URL must include a hostname: {url!r}")
    if not allow_private:
        resolve_public(hostname)


def resolve(hostname: str, port: int | None = None) -> list[str]:
    """The addresses `hostname` resolves to (at most `RESOLVE_TIMEOUT_S`), as MLflow's messages say."""
    if not _RESOLVING.acquire(timeout=RESOLVE_TIMEOUT_S):
        raise InvalidParameterValue(f"Timed out waiting to resolve Webhook URL hostname {hostname!r} because "
                                    "too many hostname resolutions are already in progress")
    result: dict = {}

    def lookup() -> None:
        try:
            result["infos"] = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # noqa: BLE001 - reported below
            result["error"] = exc
        finally:
            _RESOLVING.release()

    thread = threading.Thread(target=lookup, daemon=True, name="trackops-webhook-resolve")
    thread.start()
    thread.join(RESOLVE_TIMEOUT_S)
    if thread.is_alive():
        raise InvalidParameterValue(f"Timed out resolving Webhook URL hostname {hostname!r} after "
                                    f"{RESOLVE_TIMEOUT_S:g} seconds")
    error = result.get("error")
    if error is not None:
        if isinstance(error, (socket.gaierror, UnicodeError, ValueError)):
            raise InvalidParameterValue(f"Cannot resolve Webhook URL hostname {hostname!r}: {error}")
        raise InvalidParameterValue(f"Cannot resolve Webhook URL hostname {hostname!r}: {type(error).__name__}")
    addresses: list[str] = []
    for info in result["infos"]:
        address = str(info[4][0]).split("%")[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    return addresses


def resolve_public(hostname: str, port: int | None = None) -> list[str]:
    """`resolve`, refusing the host when any of its addresses is not public."""
    addresses = resolve(hostname, port)
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as exc:
            raise InvalidParameterValue(f"Webhook URL hostname {hostname!r} resolved to an invalid IP address: "
                                        f"{exc}") from None
        if not is_public(ip):
            raise InvalidParameterValue(f"Webhook URL must not resolve to a non-public IP address. "
                                        f"{hostname!r} resolves to {ip}.")
    return addresses


def resolve_for_delivery(hostname: str, port: int, *, allow_private: bool) -> list[str]:
    """The checked addresses to connect to (public ones only unless `allow_private`)."""
    return resolve(hostname, port) if allow_private else resolve_public(hostname, port)
