"""A burst of huge filter strings costs a bounded amount of memory, and every one is a clear 400."""

from __future__ import annotations

import concurrent.futures
import json
import urllib.error
import urllib.request

from tests.compat.server import ServerProcess

API = "/api/2.0/mlflow"
BURST = 300
FILTER = "attributes.run_name = '" + "x" * (1024 * 1024) + "'"


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _search(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url + f"{API}/runs/search", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_a_burst_of_megabyte_filters_is_refused_and_memory_returns(tmp_path):
    server = ServerProcess([], tmp_path)
    try:
        normal = json.dumps({"experiment_ids": ["0"], "filter": "attributes.run_name = 'a'"}).encode()
        assert _search(server.url, normal)[0] == 200
        before = _rss_kib(server.proc.pid)
        huge = json.dumps({"experiment_ids": ["0"], "filter": FILTER}).encode()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _i: _search(server.url, huge), range(BURST)))
        assert {status for status, _ in answers} == {400}
        assert all(body.get("error_code") == "INVALID_PARAMETER_VALUE" for _, body in answers)
        assert _search(server.url, normal)[0] == 200  # the server still serves normal requests
        grown_mib = (_rss_kib(server.proc.pid) - before) / 1024
        # 300 MiB of filters went through; what stays must be the cost of a few in flight, not of the burst
        assert grown_mib < 64, f"RSS grew by {grown_mib:.0f} MiB"
    finally:
        server.stop()


def test_filters_with_non_ascii_digits_or_letters_are_a_400_not_a_500(tmp_path):
    server = ServerProcess([], tmp_path)
    try:
        for text in ("metrics.x > ²", "attributes.run_name = 'a' AND ª = 1", "params.p = ١"):
            status, body = _search(server.url, json.dumps({"experiment_ids": ["0"], "filter": text}).encode())
            assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", (text, status, body)
    finally:
        server.stop()
