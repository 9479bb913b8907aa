"""Under load: 60 Hz input, inference slower than that (tiny network + 50 ms artificial delay).

Latency from image stamp to received detection must not grow over the run (latest-wins: no
backlog), the pairs the worker could not take must be counted as dropped, and memory must stay
flat. CI runs 15 s (CKD_LOAD_TEST_S overrides; a minute is a good local soak).
"""
from __future__ import annotations

import os
import time

import numpy as np
import psutil
import pytest
from test_node_support import Harness, make_context, shutdown_context, tiny_factory, wait_for

pytestmark = pytest.mark.ros

DURATION_S = float(os.environ.get("CKD_LOAD_TEST_S", "15"))
RATE_HZ = 60.0
DELAY_S = 0.05  # inference at most 20 Hz


def test_latency_bounded_drops_counted_memory_flat():
    ctx = make_context()
    h = Harness(ctx, overrides={"tracking.lost_threshold": 0.0}, backend_factory=tiny_factory(DELAY_S))
    proc = psutil.Process()
    try:
        assert wait_for(lambda: h.node.lifecycle_state == "active", 30.0)
        h.start_tracking(RATE_HZ)
        t_start = time.monotonic()
        start = h.n_dets()
        time.sleep(min(3.0, DURATION_S / 4))
        rss_early = proc.memory_info().rss
        time.sleep(max(DURATION_S - (time.monotonic() - t_start), 0.0))
        rss_late = proc.memory_info().rss
        h.stop_stream()
        elapsed = time.monotonic() - t_start
        time.sleep(0.5)  # let the last pair finish

        with h._lock:
            dets = list(h.detections[start:])
            recv = list(h.det_times[start:])
        stamps = np.array([d.header.stamp.sec + d.header.stamp.nanosec * 1e-9 for d in dets])
        latency_ms = (np.array(recv) - stamps) * 1e3
        assert len(latency_ms) >= 5 * elapsed, f"only {len(latency_ms)} detections in {elapsed:.0f} s"
        third = len(latency_ms) // 3
        first, last = np.median(latency_ms[:third]), np.median(latency_ms[-third:])
        p99 = np.percentile(latency_ms, 99)
        summary = (f"{len(dets)} detections in {elapsed:.1f} s; latency median first third {first:.0f} ms, "
                   f"last third {last:.0f} ms, p99 {p99:.0f} ms, max {latency_ms.max():.0f} ms")
        print(summary)
        # a backlog would add ~1 frame period per processed pair: after N pairs the latency grows by seconds
        assert last < first + 40.0, "latency grows over the run: " + summary
        assert p99 < 400.0, summary

        counters = h.node.stats.snapshot()["counters"]
        received, processed = counters["pairs_received"], counters["pairs_processed"]
        dropped = counters.get("dropped.superseded", 0)
        accounted = processed + sum(n for k, n in counters.items() if k.startswith("dropped."))
        print(f"pairs published {len(h.published)}, received {received}, processed {processed}, dropped {dropped}")
        assert received >= 2.5 * processed, f"input ({received}) was not faster than inference ({processed})"
        assert dropped > 0 and abs(received - accounted) <= 2, counters
        values = h.wait_diag(lambda v: int(v.get("dropped.superseded", 0)) > 0, 5.0)
        assert int(values["dropped.superseded"]) > 0 and "latency_inference_ms" in values

        growth_mb = (rss_late - rss_early) / 2**20
        print(f"RSS {rss_early / 2**20:.0f} MB -> {rss_late / 2**20:.0f} MB")
        assert growth_mb < 40.0, f"memory grew by {growth_mb:.0f} MB under load"
    finally:
        h.close()
        shutdown_context(ctx)
