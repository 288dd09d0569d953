"""Registry webhooks through the real mlflow 3.17.2 client against `trackops serve`, on SQLite and PostgreSQL.

A receiver on 127.0.0.1 (allowed by ``--webhooks-allow-private`` and, for plain http, by MLflow's
``MLFLOW_WEBHOOK_ALLOWED_SCHEMES``) records what the server posts; signatures are checked the way a
receiver following MLflow's docs checks them. The SSRF checks and their messages are compared with
MLflow's own validation functions, in-process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

pytest.importorskip("mlflow")

from cryptography.fernet import Fernet  # noqa: E402

from tests.compat.server import ServerProcess  # noqa: E402
from tests.conftest import _head_db  # noqa: E402

KEY = Fernet.generate_key().decode()
SENDER_SLOTS = 10  # posts a server worker makes at once (MLFLOW_WEBHOOK_DELIVERY_MAX_WORKERS)
SECRET = "receiver-shared-secret"
BASE_ENV = {"MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https", "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": KEY,
            "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "3", "TRACKOPS_WEBHOOK_BACKOFF_BASE": "0.1",
            "MLFLOW_WEBHOOK_DELIVERY_MAX_WORKERS": str(SENDER_SLOTS)}
WAIT_S = 60


class Receiver:
    """An HTTP receiver: records every POST; `plan[path]` lists the statuses to answer first (then 200)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.plan: dict[str, list[int]] = {}
        self.hold: dict[str, threading.Event] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                gate = receiver.hold.get(self.path)
                if gate is not None:
                    gate.wait(WAIT_S)
                with receiver.changed:
                    planned = receiver.plan.get(self.path) or []
                    status = planned.pop(0) if planned else 200
                    status, extra = status if isinstance(status, tuple) else (status, {})
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                              "status": status})
                    receiver.changed.notify_all()
                self.send_response(status)
                for header, value in extra.items():
                    self.send_header(header, value)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"received")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str, name: str | None = None) -> list[dict]:
        with self.changed:
            found = [r for r in self.requests if r["path"] == path]
        if name is not None:
            found = [r for r in found if json.loads(r["body"])["data"].get("name") == name]
        return found

    def wait(self, path: str, count: int, name: str | None = None) -> list[dict]:
        deadline = time.monotonic() + WAIT_S
        while len(self.at(path, name)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} received {len(self.at(path, name))} of {count} posts")
            with self.changed:
                self.changed.wait(0.2)
        return self.at(path, name)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def verify(request: dict, secret: str = SECRET) -> dict:
    """Check the request as MLflow's docs tell a receiver to; return the parsed body."""
    headers = request["headers"]
    delivery_id, timestamp = headers["X-MLflow-Delivery-Id"], headers["X-MLflow-Timestamp"]
    expected = base64.b64encode(hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{request['body']}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert headers["X-MLflow-Signature"] == f"v1,{expected}"
    assert headers["Content-Type"] == "application/json"
    assert abs(int(timestamp) - time.time()) < 300  # the replay window a receiver enforces
    uuid.UUID(delivery_id)
    return json.loads(request["body"])


def wait_until(predicate, what: str):
    deadline = time.monotonic() + WAIT_S
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def queue_rows(db_url: str) -> list[dict]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text("SELECT * FROM trackops_webhook_deliveries")).mappings()]
    finally:
        engine.dispose()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _serve(db_url: str, folder: Path, env: dict | None = None) -> ServerProcess:
    return ServerProcess(["--backend-store-uri", db_url, "--artifacts-destination", str(folder / "art"),
                          "--webhooks-allow-private", "--no-access-log"], folder, env={**BASE_ENV, **(env or {})})


class Served:
    def __init__(self, db_url: str, folder: Path):
        self.db_url, self.folder = db_url, folder
        self.start()

    def start(self) -> None:
        from mlflow import MlflowClient

        self.server = _serve(self.db_url, self.folder)
        self.url = self.server.url
        self.client = MlflowClient(tracking_uri=self.url, registry_uri=self.url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory, _head_templates):
    folder = tmp_path_factory.mktemp(f"webhooks-{request.param}")
    # a database already at head (the session's template), so the server starts without migrating
    db_url = _head_db(request.param, _head_templates, folder, tmp_path_factory)
    served = Served(db_url, folder)
    yield served
    served.server.stop()


def _hook(served: Served, receiver: Receiver, path: str, events: list[str], **kwargs):
    return served.client.create_webhook(name=f"hook-{uuid.uuid4().hex[:8]}", url=receiver.url(path), events=events,
                                        secret=SECRET, **kwargs)


# --- CRUD and test-webhook through the real client ------------------------------------------------

def test_client_creates_gets_lists_updates_and_deletes_webhooks(served, receiver):
    from mlflow.entities.webhook import WebhookEvent, WebhookStatus
    from mlflow.exceptions import RestException

    c = served.client
    first = c.create_webhook(name="registry-hook", url=receiver.url("/crud"), events=["model_version.created"],
                             description="notify CI", secret="s", status="DISABLED")
    second = c.create_webhook(name="second.hook", url=receiver.url("/crud2"),
                              events=["model_version_alias.created", "registered_model.created"])
    assert first.status == WebhookStatus.DISABLED and first.description == "notify CI"
    assert first.events == [WebhookEvent("model_version", "created")]
    assert second.status == WebhookStatus.ACTIVE and second.description is None
    got = c.get_webhook(first.webhook_id)
    assert (got.name, got.url, got.events, got.creation_timestamp) == (
        "registry-hook", receiver.url("/crud"), first.events, first.creation_timestamp)
    assert got.secret is None  # never sent back

    page = c.list_webhooks(max_results=1)
    assert len(page) == 1 and page.token
    rest = c.list_webhooks(max_results=1000, page_token=page.token)
    listed = [w.webhook_id for w in page] + [w.webhook_id for w in rest]
    assert {first.webhook_id, second.webhook_id} <= set(listed) and len(listed) == len(set(listed))

    updated = c.update_webhook(first.webhook_id, status="ACTIVE", description="",
                               events=["model_version_tag.set", "model_version_tag.deleted"])
    assert updated.status == WebhookStatus.ACTIVE and updated.description is None
    assert sorted(str(e) for e in updated.events) == ["model_version_tag.deleted", "model_version_tag.set"]
    assert updated.last_updated_timestamp >= updated.creation_timestamp
    assert c.get_webhook(first.webhook_id).events == updated.events

    for hook in (first, second):
        c.delete_webhook(hook.webhook_id)
    with pytest.raises(RestException, match="RESOURCE_DOES_NOT_EXIST") as err:
        c.get_webhook(first.webhook_id)
    assert f"Webhook with ID {first.webhook_id} not found." in str(err.value)
    assert first.webhook_id not in [w.webhook_id for w in c.list_webhooks(max_results=1000)]


def test_test_webhook_posts_mlflow_example_payload_signed_with_the_secret(served, receiver):
    from mlflow.entities.webhook import WebhookEvent
    from mlflow.webhooks.types import get_example_payload_for_event

    hook = _hook(served, receiver, "/test-hook", ["model_version.created", "prompt.created"])
    try:
        result = served.client.test_webhook(hook.webhook_id)
        assert (result.success, result.response_status, result.response_body) == (True, 200, "received")
        chosen = served.client.test_webhook(hook.webhook_id, event=WebhookEvent("prompt_alias", "deleted"))
        assert chosen.success
        first, second = receiver.wait("/test-hook", 2)
        for request, event in ((first, WebhookEvent("model_version", "created")),
                               (second, WebhookEvent("prompt_alias", "deleted"))):
            body = verify(request)
            assert (body["entity"], body["action"]) == (event.entity.value, event.action.value)
            assert body["data"] == get_example_payload_for_event(event)
        served.client.update_webhook(hook.webhook_id, url=receiver.url("/test-hook").replace(
            str(receiver.server.server_address[1]), "1"))  # nothing listens on port 1
        refused = served.client.test_webhook(hook.webhook_id)
        assert refused.success is False and refused.error_message.startswith("Failed to test webhook: ")
    finally:
        served.client.delete_webhook(hook.webhook_id)


# --- delivery of registry events ------------------------------------------------------------------

def test_registry_changes_are_posted_with_mlflow_payloads_and_valid_signatures(served, receiver):
    c, name = served.client, f"model-{uuid.uuid4().hex[:8]}"
    hook = _hook(served, receiver, "/events", [
        "registered_model.created", "model_version.created", "model_version_tag.set", "model_version_tag.deleted",
        "model_version_alias.created", "model_version_alias.deleted"])
    try:
        c.create_registered_model(name, tags={"team": "vision"}, description="classifier")
        version = c.create_model_version(name, "s3://bucket/model", tags={"stage": "candidate"},
                                         description="first").version
        c.set_model_version_tag(name, version, "validated", "yes")
        c.delete_model_version_tag(name, version, "validated")
        c.set_registered_model_alias(name, "champion", version)
        c.delete_registered_model_alias(name, "champion")
        c.set_registered_model_tag(name, "owner", "me")  # not an event for a model (only for a prompt)
        posts = receiver.wait("/events", 6, name)
        bodies = sorted((verify(p) for p in posts), key=lambda b: b["timestamp"])
        assert [(b["entity"], b["action"], b["data"]) for b in bodies] == [
            ("registered_model", "created", {"name": name, "tags": {"team": "vision"}, "description": "classifier"}),
            ("model_version", "created", {"name": name, "version": version, "source": "s3://bucket/model",
                                          "run_id": None, "tags": {"stage": "candidate"}, "description": "first"}),
            ("model_version_tag", "set", {"name": name, "version": version, "key": "validated", "value": "yes"}),
            ("model_version_tag", "deleted", {"name": name, "version": version, "key": "validated"}),
            ("model_version_alias", "created", {"name": name, "alias": "champion", "version": version}),
            ("model_version_alias", "deleted", {"name": name, "alias": "champion"}),
        ]
        assert all(set(b) == {"entity", "action", "timestamp", "data"} for b in bodies)
        assert len({p["headers"]["X-MLflow-Delivery-Id"] for p in posts}) == 6
        wait_until(lambda: not queue_rows(served.db_url), "the queue to empty")
    finally:
        c.delete_webhook(hook.webhook_id)


def test_prompt_changes_are_posted_as_prompt_events(served, receiver):
    c, name = served.client, f"prompt-{uuid.uuid4().hex[:8]}"
    hook = _hook(served, receiver, "/prompts", ["prompt.created", "prompt_version.created", "prompt_tag.set",
                                                "prompt_alias.created", "registered_model.created",
                                                "model_version.created", "model_version_alias.created"])
    try:
        # the real client: register_prompt creates the prompt and its first version (source
        # "dummy-source", MLflow's placeholder), then a tag on the prompt and an alias
        c.register_prompt(name=name, template="Hello {{who}}!", tags={"lang": "en"})
        c.set_prompt_tag(name, "owner", "me")
        c.set_prompt_alias(name, "prod", 1)
        posts = receiver.wait("/prompts", 5, name)
        bodies = sorted((verify(p) for p in posts), key=lambda b: b["timestamp"])
        events = [(b["entity"], b["action"]) for b in bodies]
        # the client also tags the prompt with the experiments it was registered from
        assert events == [("prompt", "created"), ("prompt_version", "created"), ("prompt_tag", "set"),
                          ("prompt_tag", "set"), ("prompt_alias", "created")]
        created_version = bodies[1]["data"]
        assert (created_version["name"], created_version["version"], created_version["template"]) == (
            name, "1", "Hello {{who}}!")
        assert created_version["tags"] == {"lang": "en"} and created_version["description"] is None
        assert {"name": name, "key": "owner", "value": "me"} in (bodies[2]["data"], bodies[3]["data"])
        assert bodies[4]["data"] == {"name": name, "alias": "prod", "version": "1"}
    finally:
        c.delete_webhook(hook.webhook_id)


def test_a_receiver_that_fails_twice_then_succeeds_gets_the_event_once_more(served, receiver):
    c, name = served.client, f"flaky-{uuid.uuid4().hex[:8]}"
    receiver.plan["/flaky"] = [500, 503]
    hook = _hook(served, receiver, "/flaky", ["registered_model.created"])
    try:
        c.create_registered_model(name)
        posts = receiver.wait("/flaky", 3, name)
        wait_until(lambda: not queue_rows(served.db_url), "the delivered row to leave the queue")
        posts = receiver.at("/flaky", name)
        assert [p["status"] for p in posts] == [500, 503, 200]
        assert len({p["headers"]["X-MLflow-Delivery-Id"] for p in posts}) == 1  # one delivery, retried
        assert len({p["body"] for p in posts}) == 1
        for p in posts:
            verify(p)
    finally:
        c.delete_webhook(hook.webhook_id)


def test_a_receiver_that_keeps_failing_gets_one_attempt_plus_the_retries_then_none(served, receiver):
    c, name = served.client, f"down-{uuid.uuid4().hex[:8]}"
    receiver.plan["/down"] = [503] * 20
    hook = _hook(served, receiver, "/down", ["registered_model.created"])
    try:
        c.create_registered_model(name)
        failed = wait_until(lambda: [r for r in queue_rows(served.db_url) if r["state"] == "failed"],
                            "the delivery to be given up")
        assert failed[0]["attempts"] == 4 and failed[0]["last_status"] == 503
        assert [p["status"] for p in receiver.at("/down", name)] == [503] * 4  # 1 + MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES
        # a 4xx is the receiver's final answer: not retried
        receiver.plan["/gone"] = [410]
        served.client.update_webhook(hook.webhook_id, url=receiver.url("/gone"))
        other = f"gone-{uuid.uuid4().hex[:8]}"
        c.create_registered_model(other)
        wait_until(lambda: [r for r in queue_rows(served.db_url) if r["state"] == "failed" and r["last_status"] == 410],
                   "the 410 to fail the delivery")
        assert [p["status"] for p in receiver.at("/gone", other)] == [410]
    finally:
        c.delete_webhook(hook.webhook_id)
    assert not queue_rows(served.db_url)  # deleting the webhook drops what was queued for it


def test_the_registry_request_does_not_wait_for_a_slow_receiver(served, receiver):
    c, name = served.client, f"slow-{uuid.uuid4().hex[:8]}"
    gate = receiver.hold["/slow"] = threading.Event()
    hook = _hook(served, receiver, "/slow", ["registered_model.created"])
    try:
        c.create_registered_model(name)  # returns while the receiver still holds the post
        assert c.get_registered_model(name).name == name
        assert not receiver.at("/slow", name)
        gate.set()
        receiver.wait("/slow", 1, name)
    finally:
        gate.set()
        c.delete_webhook(hook.webhook_id)


# --- bad input: MLflow's statuses and messages ----------------------------------------------------

def test_bad_webhook_requests_get_mlflow_statuses_and_messages(served):
    api = served.url + "/api/2.0/mlflow/webhooks"
    event = [{"entity": "MODEL_VERSION", "action": "CREATED"}]
    # (body, status, error_code, message) as mlflow server 3.17.2 answers them
    cases = [
        ({}, 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'name'. See the API docs for "
                                              "more information about request parameters."),
        ({"name": "a"}, 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'url'. See the API "
                                                        "docs for more information about request parameters."),
        ({"name": "a", "url": "http://127.0.0.1/x"}, 400, "INVALID_PARAMETER_VALUE",
         "Missing value for required parameter 'events'. See the API docs for more information about request "
         "parameters."),
        ({"name": "a", "url": "http://127.0.0.1/x", "events": []}, 400, "INVALID_PARAMETER_VALUE",
         "Webhook events must be a non-empty list of WebhookEvent objects: []."),
        ({"name": "a b", "url": "http://127.0.0.1/x", "events": event}, 400, "INVALID_PARAMETER_VALUE",
         "Webhook name 'a b' is invalid. It must start and end with a letter or digit, be less than 63 characters "
         "long, and contain only letters, digits, dots (.), underscores (_), and hyphens (-)."),
        ({"name": "a", "url": "ftp://x", "events": event}, 400, "INVALID_PARAMETER_VALUE",
         "Invalid webhook URL scheme: 'ftp'. Allowed schemes are: http, https."),
        ({"name": "a", "url": "https:///x", "events": event}, 400, "INVALID_PARAMETER_VALUE",
         "Webhook URL must include a hostname: 'https:///x'"),
        ({"name": "a", "url": "http://127.0.0.1/x", "events": [{"entity": "MODEL_VERSION", "action": "SET"}]}, 400,
         "INVALID_PARAMETER_VALUE", "Invalid action 'set' for entity 'model_version'. Valid actions are: ['created']"),
        ({"name": "a", "url": "http://127.0.0.1/x", "events": event + event}, 400, "BAD_REQUEST", None),
        # MLflow answers these two with an HTML 500 page; trackops with a 400
        ({"name": "a", "url": "http://127.0.0.1/x", "events": [{"entity": "BOGUS", "action": "SET"}]}, 400,
         "INVALID_PARAMETER_VALUE", None),
        ({"name": "a", "url": "http://127.0.0.1/x", "events": [{"entity": "MODEL_VERSION"}]}, 400,
         "INVALID_PARAMETER_VALUE", None),
    ]
    for body, status, code, message in cases:
        r = requests.post(api, json=body, timeout=30)
        assert (r.status_code, r.json()["error_code"]) == (status, code), (body, r.text)
        if message is not None:
            assert r.json()["message"] == message, body
    for path, method, params in [("/nope", "GET", None), ("/nope", "PATCH", {}), ("/nope", "DELETE", None),
                                 ("/nope/test", "POST", {})]:
        r = requests.request(method, api + path, json=params, timeout=30)
        assert (r.status_code, r.json()) == (404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                                   "message": "Webhook with ID nope not found."})
    r = requests.get(api, params={"max_results": 1001}, timeout=30)
    assert (r.status_code, r.json()["message"]) == (400, "max_results must be between 1 and 1000.")


# --- restart ---------------------------------------------------------------------------------------

def test_an_event_queued_before_a_restart_is_delivered_after_it(served, receiver):
    name = f"restart-{uuid.uuid4().hex[:8]}"
    receiver.plan["/restart"] = [(503, {"Retry-After": "5"})] * 20  # the retry waits while the server stops
    hook = _hook(served, receiver, "/restart", ["registered_model.created"])
    served.client.create_registered_model(name)
    receiver.wait("/restart", 1, name)
    served.server.stop()
    attempts_before = len(receiver.at("/restart", name))
    [queued] = queue_rows(served.db_url)
    assert queued["state"] == "pending" and queued["attempts"] == attempts_before
    receiver.plan["/restart"] = []  # the receiver is back
    served.start()
    try:
        receiver.wait("/restart", attempts_before + 1, name)
        wait_until(lambda: not queue_rows(served.db_url), "the delivered row to leave the queue")
        posts = receiver.at("/restart", name)
        assert [p["status"] for p in posts] == [503] * attempts_before + [200]
        assert {p["headers"]["X-MLflow-Delivery-Id"] for p in posts} == {queued["delivery_id"]}
        assert json.loads(posts[-1]["body"])["data"] == {"name": name, "tags": {}, "description": ""}
        verify(posts[-1])
    finally:
        served.client.delete_webhook(hook.webhook_id)


def test_a_version_created_just_before_the_server_is_killed_is_delivered_after_the_restart(served, receiver):
    """SIGKILL right after the request returns: the event's row was committed with the version."""
    c, name = served.client, f"killed-{uuid.uuid4().hex[:8]}"
    gate = receiver.hold["/busy"] = threading.Event()
    # Every posting slot held by another webhook's post: the version's event stays unclaimed until the kill.
    busy = [_hook(served, receiver, "/busy", ["registered_model.created"]) for _ in range(SENDER_SLOTS)]
    hook = _hook(served, receiver, "/killed", ["model_version.created"])
    try:
        c.create_registered_model(name)
        wait_until(lambda: sum(bool(r["lease_until"]) for r in queue_rows(served.db_url)) == SENDER_SLOTS,
                   "every slot to be posting")
        version = c.create_model_version(name, "s3://bucket/model").version
        served.server.proc.kill()
        served.server.proc.wait()
        [queued] = [r for r in queue_rows(served.db_url) if r["webhook_id"] == hook.webhook_id]
        assert (queued["state"], queued["attempts"]) == ("pending", 0)
        served.start()
        [post] = receiver.wait("/killed", 1, name)
        assert post["headers"]["X-MLflow-Delivery-Id"] == queued["delivery_id"]
        assert verify(post)["data"] == {"name": name, "version": version, "source": "s3://bucket/model",
                                        "run_id": None, "tags": {}, "description": None}
    finally:
        gate.set()
        if served.server.proc.poll() is not None:
            served.start()
        for h in [*busy, hook]:
            served.client.delete_webhook(h.webhook_id)


REFUSE_SQLITE = ("CREATE TRIGGER refuse_delivery AFTER INSERT ON trackops_webhook_deliveries "
                 "BEGIN SELECT RAISE(ABORT, 'delivery refused'); END")
# PostgreSQL: a deferred constraint trigger fails the COMMIT itself, after every statement succeeded.
REFUSE_POSTGRESQL = ("CREATE FUNCTION refuse_delivery() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'delivery refused'; END $$",
                     "CREATE CONSTRAINT TRIGGER refuse_delivery AFTER INSERT ON trackops_webhook_deliveries "
                     "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_delivery()")


def _database(db_url: str, *statements: str) -> list[list]:
    """Run `statements` in one transaction; the rows each one returned ([] for a statement without rows)."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            return [r.all() if r.returns_rows else [] for r in (conn.execute(sa.text(st)) for st in statements)]
    finally:
        engine.dispose()


def test_a_version_whose_event_cannot_be_committed_is_not_created_either(served, receiver):
    c, name = served.client, f"atomic-{uuid.uuid4().hex[:8]}"
    hook = _hook(served, receiver, "/atomic", ["model_version.created"])
    sqlite = served.db_url.startswith("sqlite")
    c.create_registered_model(name)
    _database(served.db_url, *([REFUSE_SQLITE] if sqlite else REFUSE_POSTGRESQL))
    try:
        r = requests.post(served.url + "/api/2.0/mlflow/model-versions/create",
                          json={"name": name, "source": "s3://bucket/model"}, timeout=30)
        assert (r.status_code, r.json()["error_code"]) == (500, "INTERNAL_ERROR")
        [versions, queued] = _database(
            served.db_url, f"SELECT version FROM model_versions WHERE name = '{name}'",
            "SELECT id FROM trackops_webhook_deliveries")
        assert (versions, queued) == ([], [])
    finally:
        _database(served.db_url, "DROP TRIGGER refuse_delivery" if sqlite else
                  "DROP TRIGGER refuse_delivery ON trackops_webhook_deliveries",
                  *([] if sqlite else ["DROP FUNCTION refuse_delivery()"]))
    try:
        assert c.create_model_version(name, "s3://bucket/model").version == "1"  # the number was not used
        [post] = receiver.wait("/atomic", 1, name)
        assert verify(post)["data"]["version"] == "1"
    finally:
        c.delete_webhook(hook.webhook_id)


# --- in-process: SSRF checks and the stored secret, against MLflow's own functions ----------------

@pytest.fixture
def app_client(sqlite_head_url, tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from trackops.config import Settings
    from trackops.server.factory import build_app
    from trackops.services.serve import preflight, serve_config

    monkeypatch.setenv("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", KEY)
    monkeypatch.delenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", raising=False)
    monkeypatch.delenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", raising=False)
    settings = Settings(backend_store_uri=sqlite_head_url, artifacts_destination=str(tmp_path / "art"))
    preflight(settings)
    with TestClient(build_app(serve_config(settings)), raise_server_exceptions=False) as c:
        yield c, sqlite_head_url


REFUSED_URLS = ["http://example.com/hook", "https://127.0.0.1/hook", "https://localhost/hook", "https://10.0.0.8/hook",
                "https://169.254.169.254/latest/meta-data", "https://[::1]/hook", "https://[::ffff:192.168.0.1]/hook",
                "https://[64:ff9b::7f00:1]/hook", "https://100.64.0.1/hook", "https:///hook", " "]


def test_internal_and_plain_http_urls_are_refused_with_mlflow_messages(app_client):
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_webhook_url

    client, _ = app_client
    for url in REFUSED_URLS:
        with pytest.raises(MlflowException) as mlflow_says:
            _validate_webhook_url(url)
        r = client.post("/api/2.0/mlflow/webhooks", json={
            "name": "h", "url": url, "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}]})
        assert (r.status_code, r.json()) == (400, {"error_code": "INVALID_PARAMETER_VALUE",
                                                   "message": mlflow_says.value.message}), url


@pytest.mark.parametrize("address", ["8.8.8.8", "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "2001:4860:4860::8888", "::1", "fe80::1",
                                     "fc00::1", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "2002:7f00:1::",
                                     "2002:808:808::", "64:ff9b::a00:1", "64:ff9b::808:808"])
def test_public_address_check_matches_mlflow(address):
    from mlflow.utils.validation import _is_public_ip

    from trackops.stores.webhook_urls import is_public

    ip = ipaddress.ip_address(address)
    assert is_public(ip) == _is_public_ip(ip)


def test_secret_is_stored_encrypted_as_mlflow_reads_it(app_client):
    from mlflow.store.model_registry.dbmodels.models import EncryptedString

    from trackops.stores.webhooks import WebhookStore, event

    client, db_url = app_client
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        hook = WebhookStore(engine, allow_private=True).create_webhook(
            "h", "https://127.0.0.1/x", [event("model_version", "created")], secret=SECRET)
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT secret, workspace, status FROM webhooks WHERE webhook_id = :i"),
                                  {"i": hook.webhook_id}).one()
    finally:
        engine.dispose()
    assert SECRET not in stored.secret and (stored.workspace, stored.status) == ("default", "ACTIVE")
    assert EncryptedString().process_result_value(stored.secret, None) == SECRET  # MLflow's column type reads it
    got = client.get(f"/api/2.0/mlflow/webhooks/{hook.webhook_id}").json()["webhook"]
    assert "secret" not in got and got["events"] == [{"entity": "MODEL_VERSION", "action": "CREATED"}]


def test_webhook_endpoints_are_for_administrators_under_auth(sqlite_head_url, tmp_path, monkeypatch):
    from trackops.auth import passwords

    from tests.auth.conftest import with_own_tables
    from tests.auth.test_server_auth import ADMIN, WRITER, make_client

    monkeypatch.setattr(passwords, "SCRYPT_LN", 10)  # cheap hashing, as the auth tests use
    monkeypatch.setattr(passwords, "_DUMMY", None)
    api = "/api/2.0/mlflow/webhooks"
    body = {"name": "h", "url": "http://127.0.0.1/x", "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}]}
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
    with make_client(with_own_tables(sqlite_head_url), tmp_path, monkeypatch, "MANAGE") as client:
        created = client.post(api, json=body, headers=ADMIN)
        assert created.status_code == 200, created.text
        hook = created.json()["webhook"]["webhook_id"]
        for method, path in [("POST", ""), ("GET", ""), ("GET", f"/{hook}"), ("PATCH", f"/{hook}"),
                             ("DELETE", f"/{hook}"), ("POST", f"/{hook}/test")]:
            r = client.request(method, api + path, json=body if method != "GET" else None, headers=WRITER)
            assert (r.status_code, r.json()["error_code"]) == (403, "PERMISSION_DENIED"), (method, path)
            assert client.request(method, api + path, json=None).status_code == 401
        assert client.get(f"{api}/{hook}", headers=ADMIN).status_code == 200


def test_a_registry_change_under_auth_queues_its_event(sqlite_head_url, tmp_path, monkeypatch):
    from trackops.auth import passwords

    from tests.auth.conftest import with_own_tables
    from tests.auth.test_server_auth import ADMIN, WRITER, make_client

    monkeypatch.setattr(passwords, "SCRYPT_LN", 10)
    monkeypatch.setattr(passwords, "_DUMMY", None)
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
    api = "/api/2.0/mlflow"
    with make_client(with_own_tables(sqlite_head_url), tmp_path, monkeypatch, "MANAGE") as client:
        assert client.post(f"{api}/webhooks", headers=ADMIN, json={
            "name": "h", "url": "http://127.0.0.1/x",
            "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}]}).status_code == 200
        assert client.post(f"{api}/registered-models/create", json={"name": "m"}, headers=WRITER).status_code == 200
        created = client.post(f"{api}/model-versions/create", json={"name": "m", "source": "s3://b/m"}, headers=WRITER)
        assert created.status_code == 200, created.text
    [queued] = queue_rows(sqlite_head_url)
    assert (queued["entity"], queued["action"], json.loads(queued["body"])["data"]["version"]) == (
        "model_version", "created", "1")
