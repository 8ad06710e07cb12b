"""The 60-second mixed soak of bench/soak.py as a slow test: no errors, worker memory flat."""

from __future__ import annotations

import pytest

from bench.soak import RSS_LIMIT, soak


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sixty_second_mixed_soak(capsys):
    """Reads, anonymous posts and posts with a chatterID and a JWT for 60 s on two workers."""
    report = await soak(duration=60, warmup=10)
    with capsys.disabled():
        print("\n" + report.render())
    assert report.requests > 1000, report.render()
    assert report.errors == 0, report.outcomes
    assert set(report.rss_end) == set(report.rss_warm), "no worker was replaced"
    assert max(report.growth.values()) <= RSS_LIMIT, report.render()
