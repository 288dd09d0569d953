"""The access log's own stderr writer renders each line as logging's handler would."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from trackops.server import access_log


@pytest.mark.parametrize("moment", [1796400000.0, 1796400000.0424, 1796400059.9999])
def test_direct_line_is_the_logging_formatters_line(monkeypatch, capsys, moment):
    message = '127.0.0.1:5000 "GET /api/2.0/mlflow/experiments/get" 200 alice 0.4ms'
    record = logging.LogRecord("trackops.access", logging.INFO, __file__, 1, message, None, None)
    record.created, record.msecs = moment, int((moment - int(moment)) * 1000) + 0.0
    expected = logging.Formatter(access_log.LINE_FORMAT).format(record)

    monkeypatch.setattr(access_log.time, "time", lambda: moment)
    access_log.StderrLines()(message)
    assert capsys.readouterr().err == expected + "\n"


def test_stamp_moves_on_with_the_clock(monkeypatch, capsys):
    clock = iter([1796400000.5, 1796400001.25])
    monkeypatch.setattr(access_log.time, "time", lambda: next(clock))
    write = access_log.StderrLines()
    write("first")
    write("second")
    first, second = capsys.readouterr().err.splitlines()
    assert first.endswith(",500 first") and second.endswith(",250 second")
    assert first[:19] == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1796400000))
    assert second[:19] == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1796400001))


def _serve_once(middleware) -> None:
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(_message):
        return None

    middleware.app = app
    scope = {"type": "http", "method": "DELETE", "path": "/api/2.0/mlflow/runs/delete", "client": ("10.0.0.7", 4100)}
    asyncio.run(middleware(scope, None, send))


def test_configured_logging_still_receives_the_lines(caplog):
    """A program that set up logging (here pytest's handler on the root logger) gets the lines as records."""
    with caplog.at_level(logging.INFO, logger="trackops.access"):
        middleware = access_log.AccessLogMiddleware(None)
        assert middleware.write is None
        _serve_once(middleware)
    lines = [r.getMessage() for r in caplog.records if r.name == "trackops.access"]
    assert len(lines) == 1 and lines[0].startswith('10.0.0.7:4100 "DELETE /api/2.0/mlflow/runs/delete" 204 - ')


def test_unconfigured_logging_writes_the_line_to_stderr_directly(monkeypatch, capsys):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(access_log.log, "handlers", [])
    monkeypatch.setattr(access_log.log, "propagate", access_log.log.propagate)  # restored afterwards
    monkeypatch.setattr(access_log.log, "level", access_log.log.level)
    middleware = access_log.AccessLogMiddleware(None)
    assert middleware.write is not None
    _serve_once(middleware)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and '10.0.0.7:4100 "DELETE /api/2.0/mlflow/runs/delete" 204 - ' in err
