"""Webhook delivery: MLflow 3.17.2's request (body, headers, HMAC signature) from a queue in the database.

An event is queued by `WebhookStore.enqueue` in the request that caused it (one small INSERT, and
nothing at all while no active webhook listens to that event); `WebhookSender`, a thread of each
server worker, posts the queued rows. So the request is never slowed by a receiver, and an event
queued before a restart is posted after it.

What a receiver gets is what `mlflow server` sends:

- ``POST <url>`` with ``Content-Type: application/json`` and the body
  ``{"entity": ..., "action": ..., "timestamp": <ISO 8601, UTC>, "data": <payload>}``;
- ``X-MLflow-Delivery-Id`` (a uuid4, the same on every attempt of one delivery),
  ``X-MLflow-Timestamp`` (Unix seconds of the attempt) and, when the webhook has a secret,
  ``X-MLflow-Signature: v1,<base64 HMAC-SHA256 of "<delivery id>.<timestamp>.<body>">``.

Retries are bounded as MLflow's: 1 + ``MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES`` (default 3) attempts,
on a connection error, a timeout, 429, 500, 502, 503 or 504; back-off 1 s, 2 s, 4 s ... capped at
60 s, plus up to 1 s of jitter, or the receiver's ``Retry-After`` (capped too); the 1 s base is
``TRACKOPS_WEBHOOK_BACKOFF_BASE``. Another status
(4xx, 3xx: redirects are not followed) fails the delivery at once. Each attempt is counted when it
starts, so a server that dies mid-request does not retry for ever. Attempts time out after
``MLFLOW_WEBHOOK_REQUEST_TIMEOUT`` seconds (default 30).

The sender connects to the address the URL check resolved (`webhook_urls.resolve_for_delivery`),
never through a proxy, with TLS verified against the host name.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import http.client
import logging
import os
import random
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from typing import Any

from trackops.errors import StoreError
from trackops.stores import webhook_urls
from trackops.stores.webhooks import Webhook, WebhookEvent, WebhookSecretUnreadable, WebhookStore

log = logging.getLogger("trackops.webhooks")

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_MAX_S = 60.0
MAX_RESPONSE_BODY = 64 * 1024
POLL_S = 1.0  # how often a sender looks for rows other workers queued (its own wake it at once)
PRUNE_FAILED_AFTER_MS = 30 * 24 * 3600 * 1000

# MLflow's example payloads, which test-webhook posts (mlflow.webhooks.types ...Payload.example()).
EXAMPLES: dict[str, dict[str, Any]] = {
    "registered_model.created": {"name": "example_model", "tags": {"example_key": "example_value"},
                                 "description": "An example registered model"},
    "model_version.created": {"name": "example_model", "version": "1", "source": "models:/123",
                              "run_id": "abcd1234abcd5678", "tags": {"example_key": "example_value"},
                              "description": "An example model version"},
    "model_version_tag.set": {"name": "example_model", "version": "1", "key": "example_key",
                              "value": "example_value"},
    "model_version_tag.deleted": {"name": "example_model", "version": "1", "key": "example_key"},
    "model_version_alias.created": {"name": "example_model", "alias": "example_alias", "version": "1"},
    "model_version_alias.deleted": {"name": "example_model", "alias": "example_alias"},
    "prompt.created": {"name": "example_prompt", "tags": {"example_key": "example_value"},
                       "description": "An example prompt"},
    "prompt_version.created": {"name": "example_prompt", "version": "1", "template": "Hello {{name}}!",
                               "tags": {"example_key": "example_value"}, "description": "An example prompt version"},
    "prompt_tag.set": {"name": "example_prompt", "key": "example_key", "value": "example_value"},
    "prompt_tag.deleted": {"name": "example_prompt", "key": "example_key"},
    "prompt_version_tag.set": {"name": "example_prompt", "version": "1", "key": "example_key",
                               "value": "example_value"},
    "prompt_version_tag.deleted": {"name": "example_prompt", "version": "1", "key": "example_key"},
    "prompt_alias.created": {"name": "example_prompt", "alias": "example_alias", "version": "1"},
    "prompt_alias.deleted": {"name": "example_prompt", "alias": "example_alias"},
    "budget_policy.exceeded": {"budget_policy_id": "bp-abc123", "budget_unit": "USD", "budget_amount": 100.0,
                               "current_spend": 105.5, "duration_unit": "MONTHS", "duration_value": 1,
                               "target_scope": "ENDPOINT", "workspace": "default", "target_value": "ep-abc123",
                               "window_start": 1704067200000},
}


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def max_attempts() -> int:
    return 1 + max(0, _env_int("MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES", 3))


def request_timeout() -> float:
    return float(max(1, _env_int("MLFLOW_WEBHOOK_REQUEST_TIMEOUT", 30)))


def sign(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    """MLflow's ``v1,<base64 HMAC-SHA256>`` over ``<delivery id>.<timestamp>.<body>``."""
    digest = hmac.new(secret.encode("utf-8"), f"{delivery_id}.{timestamp}.{body}".encode("utf-8"),
                      hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class Response:
    def __init__(self, status: int, body: str, retry_after: str | None):
        self.status, self.body, self.retry_after = status, body, retry_after


def post(url: str, body: str, headers: dict[str, str], *, allow_private: bool, timeout: float) -> Response:
    """POST `body` to `url`, connecting only to an address the SSRF check accepts (no proxy, no redirect)."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    https = parsed.scheme == "https"
    port = parsed.port or (443 if https else 80)
    addresses = webhook_urls.resolve_for_delivery(host, port, allow_private=allow_private)
    sock = _connect(addresses, port, timeout)
    try:
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock  # already connected to the checked address: http.client never resolves again
        target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        headers = {**headers, "User-Agent": "trackops-webhooks"}
        if parsed.username is not None:  # credentials in the URL, as requests sends them
            creds = f"{urllib.parse.unquote(parsed.username)}:{urllib.parse.unquote(parsed.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
        conn.request("POST", target, body=body.encode("utf-8"), headers=headers)
        response = conn.getresponse()
        text = response.read(MAX_RESPONSE_BODY).decode("utf-8", errors="replace")
        return Response(response.status, text, response.getheader("Retry-After"))
    finally:
        sock.close()


def _connect(addresses: list[str], port: int, timeout: float) -> socket.socket:
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            error = exc
    raise error or OSError(f"no address to connect to on port {port}")


def deliver_once(store: WebhookStore, webhook: Webhook, body: str, delivery_id: str) -> Response:
    """One attempt: sign (when the webhook has a secret) and post. Raises on a network error."""
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", DELIVERY_ID_HEADER: delivery_id, TIMESTAMP_HEADER: timestamp}
    secret = store.secret_of(webhook)
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, delivery_id, timestamp, body)
    webhook_urls.validate_url(webhook.url, allow_private=True)  # scheme still allowed (the address is checked in post)
    return post(webhook.url, body, headers, allow_private=store.allow_private, timeout=request_timeout())


def test_webhook(store: WebhookStore, webhook: Webhook, event: WebhookEvent | None = None) -> dict[str, Any]:
    """MLflow's test-webhook: post the example payload of `event` (or the webhook's first event) now.

    The result is MLflow's ``WebhookTestResult``: success when the status is below 400.
    """
    import json
    from datetime import datetime, timezone

    chosen = event or webhook.events[0]
    body = json.dumps({"entity": chosen.entity, "action": chosen.action,
                       "timestamp": datetime.now(timezone.utc).isoformat(), "data": EXAMPLES[str(chosen)]})
    try:
        response = deliver_once(store, webhook, body, str(uuid.uuid4()))
    except (OSError, StoreError, http.client.HTTPException, ValueError) as exc:
        message = exc.message if isinstance(exc, StoreError) else repr(exc)
        return {"success": False, "error_message": f"Failed to test webhook: {message}"}
    result: dict[str, Any] = {"success": response.status < 400, "response_status": response.status}
    if response.body:
        result["response_body"] = response.body
    return result


def backoff_base() -> float:
    """``TRACKOPS_WEBHOOK_BACKOFF_BASE`` seconds (default 1, MLflow's backoff factor)."""
    try:
        return min(max(float(os.environ.get("TRACKOPS_WEBHOOK_BACKOFF_BASE", 1.0)), 0.01), BACKOFF_MAX_S)
    except ValueError:
        return 1.0


def backoff(attempt: int, retry_after: str | None = None) -> float:
    """Seconds before attempt `attempt` + 1: the receiver's Retry-After, else base x 1, 2, 4 ..., capped, + jitter."""
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after.strip()), BACKOFF_MAX_S)
    base = backoff_base()
    return min(base * 2.0 ** (attempt - 1), BACKOFF_MAX_S) + random.uniform(0, base)


class WebhookSender(threading.Thread):
    """Posts queued deliveries until `stop()`; `wake()` makes it look at the queue at once."""

    def __init__(self, store: WebhookStore, *, workers: int | None = None, lock: Any = None):
        super().__init__(name="trackops-webhooks", daemon=True)
        self.store = store
        self.workers = workers or max(1, _env_int("MLFLOW_WEBHOOK_DELIVERY_MAX_WORKERS", 10))
        self.lock = lock  # SQLite: the process's write lock, so queue updates queue behind requests
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._slots = threading.Semaphore(self.workers)
        self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="trackops-webhook-post")
        self.posted = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        """End the loop; posts in flight finish (each within the request timeout) or are retried later."""
        self._stop_event.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self) -> None:
        last_prune = 0.0
        while not self._stop_event.is_set():
            try:
                if time.monotonic() - last_prune > 3600:
                    last_prune = time.monotonic()
                    self._locked(self.store.prune_failed, PRUNE_FAILED_AFTER_MS)
                claimed = self._claim()
                if claimed:
                    continue
                due = self.store.next_due_in()
                wait = POLL_S if due is None else min(max(due, 0.05), POLL_S)
            except Exception:  # noqa: BLE001 - a background task must never take the server down
                log.warning("webhook queue unavailable; retrying", exc_info=True)
                wait = POLL_S * 5
            self._wake.wait(wait)
            self._wake.clear()

    def _claim(self) -> bool:
        free = 0
        while self._slots.acquire(blocking=False):
            free += 1
        if not free:  # every slot is posting: wait for one to finish (it wakes us)
            self._wake.wait(POLL_S)
            self._wake.clear()
            return True
        lease_ms = int((request_timeout() + 30) * 1000)
        rows = self._locked(self.store.claim_due, free, lease_ms)
        for _ in range(free - len(rows)):
            self._slots.release()
        for row in rows:
            try:
                self._pool.submit(self._post, row)
            except RuntimeError:  # the interpreter is exiting: leave the row for the next start
                self._slots.release()
                self._locked(self.store.release, row["id"])
        return bool(rows)

    def _post(self, row: dict) -> None:
        try:
            self._attempt(row)
        except Exception:  # noqa: BLE001
            log.warning("webhook delivery %s: unexpected error", row["delivery_id"], exc_info=True)
        finally:
            self._slots.release()
            self._wake.set()

    def _attempt(self, row: dict) -> None:
        webhook = self.store.find_webhook(row["webhook_id"])
        if webhook is None or webhook.status != "ACTIVE":
            self._locked(self.store.drop, row["id"])
            return
        what = f"webhook {webhook.name} ({row['entity']}.{row['action']}, delivery {row['delivery_id']})"
        try:
            response = deliver_once(self.store, webhook, row["body"], row["delivery_id"])
        except WebhookSecretUnreadable as exc:
            log.error("%s not sent: %s", what, exc.message)
            self._locked(self.store.failed, row["id"], status=None, error=exc.message)
            return
        except StoreError as exc:  # the URL is refused now (scheme, address)
            log.error("%s not sent: %s", what, exc.message)
            self._locked(self.store.failed, row["id"], status=None, error=exc.message)
            return
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._retry_or_fail(row, what, None, f"{type(exc).__name__}: {exc}", None)
            return
        if 200 <= response.status < 300:
            self.posted += 1
            self._locked(self.store.delivered, row["id"])
        elif response.status in RETRY_STATUSES:
            self._retry_or_fail(row, what, response.status, f"HTTP {response.status}", response.retry_after)
        else:
            log.error("%s refused with HTTP %s; not retried", what, response.status)
            self._locked(self.store.failed, row["id"], status=response.status, error=f"HTTP {response.status}")

    def _retry_or_fail(self, row: dict, what: str, status: int | None, error: str, retry_after: str | None) -> None:
        if row["attempts"] >= max_attempts():
            log.error("%s failed after %d attempts: %s", what, row["attempts"], error)
            self._locked(self.store.failed, row["id"], status=status, error=error)
            return
        delay = backoff(row["attempts"], retry_after)
        log.info("%s attempt %d failed (%s); next in %.1f s", what, row["attempts"], error, delay)
        self._locked(self.store.retry_later, row["id"], delay, status=status, error=error)

    def _locked(self, func, *args, **kwargs):
        if self.lock is None:
            return func(*args, **kwargs)
        with self.lock:
            return func(*args, **kwargs)
