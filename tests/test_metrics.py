"""Prometheus metrics at /metrics: request counts by route template and status, and the shared counters."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from core import metrics


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
