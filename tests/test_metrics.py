"""Prometheus metrics at /metrics: request counts by route template and status, and the shared counters."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from tests.support.common import wait_for


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_count(samples, method: str, route: str, status: str) -> float:
    key = ("chatterd_http_requests_total", (("method", method), ("route", route), ("status", status)))
    return samples.get(key, 0.0)


async def test_request_count_goes_up_after_requests(client):
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/getchatts/")).status == 200
    assert (await client.get("/getchatts")).status == 200  # same endpoint without the slash
    assert (await client.get("/getchatts/?limit=0")).status == 422
    after = await scrape(client)
    assert requests_count(after, "GET", "/getchatts", "200") == requests_count(before, "GET", "/getchatts", "200") + 4
    assert requests_count(after, "GET", "/getchatts", "422") == requests_count(before, "GET", "/getchatts", "422") + 1
    latency = (
        "chatterd_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/getchatts"), ("status", "200")),
    )
    assert after[latency] >= 4


async def test_unknown_paths_share_one_label(client):
    before = await scrape(client)
    for i in range(5):
        assert (await client.get(f"/no/such/path/{i}")).status == 404
    resp = await client.get("/metrics")
    text = await resp.text()
    assert "/no/such/path" not in text
    after = await scrape(client)
    assert requests_count(after, "GET", metrics.UNMATCHED_ROUTE, "404") == (
        requests_count(before, "GET", metrics.UNMATCHED_ROUTE, "404") + 5
    )


async def test_route_label_is_the_template_not_the_url(client):
    before = await scrape(client)
    await client.get("/getchatts/?after=00000000-0000-0000-0000-000000000000")
    after = await scrape(client)
    assert requests_count(after, "GET", "/getchatts", "422") == requests_count(before, "GET", "/getchatts", "422") + 1
    assert "00000000-0000" not in await (await client.get("/metrics")).text()


async def test_shared_counters_are_exported(client):
    metrics.SIGN_INS.labels(kind="password", outcome="success").inc()
    metrics.THROTTLES.labels(kind="login").inc()
    metrics.REVOCATIONS.labels(kind="jwt").inc()
    metrics.CERTIFICATE_FETCHES.labels(outcome="success").inc()
    samples = await scrape(client)
    names = {name for name, _ in samples}
    assert {
        "chatterd_sign_ins_total",
        "chatterd_throttles_total",
        "chatterd_revocations_total",
        "chatterd_google_certificate_fetches_total",
    } <= names
    assert samples[("chatterd_sign_ins_total", (("kind", "password"), ("outcome", "success")))] >= 1


def sample(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_sign_ins_throttles_and_revocations_are_counted(client):
    before = await scrape(client)
    account = {"username": "metered", "password": "correct horse battery"}
    assert (await client.post("/register", json=account)).status == 201
    assert (await client.post("/login", json={**account, "password": "wrong password"})).status == 401
    token = (await (await client.post("/login", json=account)).json())["token"]
    assert (await client.post("/logout", headers={"Authorization": f"Bearer {token}"})).status == 204
    after = await scrape(client)
    for name, labels in [
        ("chatterd_sign_ins_total", {"kind": "password", "outcome": "failure"}),
        ("chatterd_sign_ins_total", {"kind": "password", "outcome": "success"}),
        ("chatterd_revocations_total", {"kind": "jwt"}),
    ]:
        assert sample(after, name, **labels) == sample(before, name, **labels) + 1, (name, labels)


async def test_pending_latencies_reach_the_histogram_exactly(client):
    latencies = [0.001, 0.005, 0.0051, 0.3, 20.0]  # on a bound, just over one, and past the last
    for seconds in latencies:
        metrics.REQUESTS.record(("PATCH", None, 207), seconds)
    samples = await scrape(client)  # a scrape hands this worker's pending counts over first
    labels = {"method": "PATCH", "route": metrics.UNMATCHED_ROUTE, "status": "207"}
    assert sample(samples, "chatterd_http_requests_total", **labels) == len(latencies)
    histogram = "chatterd_http_request_duration_seconds"
    assert sample(samples, f"{histogram}_count", **labels) == len(latencies)
    assert abs(sample(samples, f"{histogram}_sum", **labels) - sum(latencies)) < 1e-9
    for bound, expected in [("0.005", 2), ("0.01", 3), ("0.25", 3), ("0.5", 4), ("10.0", 4), ("+Inf", 5)]:
        assert sample(samples, f"{histogram}_bucket", **labels, le=bound) == expected, bound


async def test_counts_made_between_scrapes_are_flushed_by_the_worker_itself(client):
    metrics.THROTTLES.labels("pending-test").inc(3)

    async def exported() -> bool:
        # the counter itself, not a scrape (which would flush first)
        return metrics.THROTTLES.exported.labels("pending-test")._value.get() == 3

    await wait_for(exported, timeout=5, what="the periodic flush")
