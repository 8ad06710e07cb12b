"""Prometheus metrics at /metrics: request counts by route template and status, and the shared counters."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

import metrics


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
