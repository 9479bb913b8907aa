"""The ckd_tracker node against real rclpy: targets by stamp and by 'newest', detections stamped with
the RGB header, LOST, clear_target, thermal-frame boxes through a homography, the lifecycle through
its services, parameter changes, both publisher reliabilities, lazy overlays.

A tiny random-weight CKD student runs the network (the box values do not matter except where a
test says so: the init frame's detection is the set_target box itself).
"""
from __future__ import annotations

import re
import time

import pytest
from test_node_support import MovingTarget, executor_params, tiny_factory, wait_active, wait_for

pytestmark = pytest.mark.ros

NEVER_LOST = {"tracking.lost_threshold": 0.0}


def stamp_of(det_array) -> int:
    s = det_array.header.stamp
    return s.sec * 1_000_000_000 + s.nanosec


@pytest.mark.parametrize("executor", executor_params())
def test_set_target_newest_then_detections_carry_rgb_headers(make_harness, executor):
    h = make_harness(executor=executor, overrides=NEVER_LOST)
    wait_active(h)
    scene = MovingTarget()
    h.stream(scene, rate_hz=20.0)
    assert wait_for(lambda: len(h.node.cache) >= 3, 10.0), "no synchronised pairs reached the node"
    k = h.published[max(h.published)]
    res = h.set_target(scene.box(k))
    assert res.success, res.status_message
    assert "newest frame" in res.status_message
    start = h.n_dets()
    assert wait_for(lambda: h.n_dets() - start >= 10, 10.0)
    dets = h.dets_since(start)
    stamps = [stamp_of(d) for d in dets]
    assert all(s in h.published for s in stamps), "detection stamps must be the RGB image stamps"
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    for d in dets:
        assert d.header.frame_id == "camera_rgb"
        assert len(d.detections) == 1
        det = d.detections[0]
        assert det.header == d.header and det.id == "1"
        assert det.results[0].hypothesis.class_id == "target" and 0.0 <= det.results[0].hypothesis.score <= 1.0
        assert 0 < det.bbox.size_x <= scene.width and 0 < det.bbox.size_y <= scene.height


@pytest.mark.parametrize("executor", executor_params())
def test_set_target_by_stamp_catches_up_and_rejects_unknown_stamps(make_harness, executor):
    h = make_harness(executor=executor, overrides=NEVER_LOST)
    wait_active(h)
    scene = MovingTarget()
    h.stream(scene, rate_hz=20.0)
    assert wait_for(lambda: len(h.node.cache) >= 15, 10.0)
    stamps = sorted(h.published)
    old = stamps[-12]  # ~0.6 s old, still cached (init_cache_s = 2)
    res = h.set_target(scene.box(h.published[old]), stamp_ns=old)
    assert res.success, res.status_message
    assert f"{old // 10**9}.{old % 10**9:09d}" in res.status_message
    m = re.search(r"caught up through (\d+) of (\d+) newer frames", res.status_message)
    assert m and 1 <= int(m.group(1)) <= 8 and int(m.group(2)) >= 11, res.status_message
    start = h.n_dets()
    assert wait_for(lambda: h.n_dets() - start >= 3, 10.0)
    assert all(stamp_of(d) > old for d in h.dets_since(start))
    res = h.set_target((10, 10, 20, 20), stamp_ns=12345)
    assert not res.success and "not in the frame cache" in res.status_message
    res = h.set_target((300, 10, 40, 20))  # 340 > 320
    assert not res.success and "exceeds the RGB image width 320" in res.status_message
    res = h.set_target((10, 10, 0, 20))
    assert not res.success and "zero-size" in res.status_message


def test_thermal_frame_box_maps_through_homography(make_harness):
    scene = MovingTarget(thermal_scale=0.5)  # thermal 160x128, RGB 320x256
    h = make_harness(overrides=dict(NEVER_LOST, **{"registration.homography": scene.homography()}))
    wait_active(h)
    t0 = time.time_ns()
    for k in range(4):
        rgb, tir = scene.frame(k)
        h.publish_pair(rgb, tir, t0 + k * 50_000_000)
        time.sleep(0.05)
    last = t0 + 3 * 50_000_000
    assert wait_for(lambda: h.node.cache.newest() is not None and h.node.cache.newest().rgb_stamp_ns == last, 10.0)
    x, y, w, _ = scene.box(3)
    thermal_box = (x / 2, y / 2, 20, 15)  # thermal pixels
    start = h.n_dets()
    res = h.set_target(thermal_box, stamp_ns=last, frame_id="camera_thermal")
    assert res.success, res.status_message
    assert "thermal box -> RGB box" in res.status_message
    # the newest pair: nothing to catch up, so the published detection is the init box itself
    assert wait_for(lambda: h.n_dets() > start, 10.0)
    det = h.dets_since(start)[0]
    assert stamp_of(det) == last
    from ckd_ros.node.detections import detection_box

    got = detection_box(det.detections[0])
    expected = (round(x / 2) * 2.0, round(y / 2) * 2.0, 40.0, 30.0)
    assert got == pytest.approx(expected, abs=1e-6), (got, expected)
    # a box on the thermal image that is bigger than the thermal image is rejected in thermal units
    res = h.set_target((150, 0, 20, 10), stamp_ns=last, frame_id="camera_thermal")
    assert not res.success and "thermal image width 160" in res.status_message


def test_lost_publishes_empty_arrays_and_runtime_thresholds(make_harness):
    h = make_harness(overrides=NEVER_LOST)
    wait_active(h)
    h.start_tracking()
    # a threshold no score reaches: LOST after one low frame
    results = h.set_params(tracking__lost_threshold=1.0, tracking__lost_frames=1)
    assert all(r.successful for r in results), [r.reason for r in results]
    assert wait_for(lambda: h.node._tracker.state.value == "lost", 10.0)
    start = h.n_dets()
    assert wait_for(lambda: h.n_dets() - start >= 5, 10.0)
    lost = h.dets_since(start)
    assert all(len(d.detections) == 0 for d in lost), "LOST must publish empty arrays"
    assert all(stamp_of(d) in h.published and d.header.frame_id == "camera_rgb" for d in lost)
    values = h.wait_diag(lambda v: v.get("state") == "lost", 5.0)
    assert values.get("state") == "lost"
    assert all(r.successful for r in h.set_params(tracking__lost_threshold=0.0))
    start = h.n_dets()
    assert wait_for(lambda: any(d.detections for d in h.dets_since(start)), 10.0), "no recovery from LOST"


def test_clear_target_stops_detections(make_harness):
    h = make_harness(overrides=NEVER_LOST)
    wait_active(h)
    h.start_tracking()
    start = h.n_dets()
    assert wait_for(lambda: h.n_dets() - start >= 3, 10.0)
    res = h.clear_target()
    assert res.success and res.message == "target cleared"
    time.sleep(0.3)  # in-flight detections drain
    n = h.n_dets()
    processed = h.node.stats.snapshot()["counters"]["pairs_processed"]
    assert wait_for(lambda: h.node.stats.snapshot()["counters"]["pairs_processed"] >= processed + 10, 10.0)
    assert h.n_dets() == n, "detections must stop while no target is set (IDLE)"
    assert h.clear_target().message == "no target was set"


@pytest.mark.parametrize("executor", executor_params())
def test_lifecycle_through_services(make_harness, executor):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    opened = []
    h = make_harness(executor=executor, overrides=dict(NEVER_LOST, autostart=False),
                     backend_factory=tiny_factory(opened=opened))
    base = h.node.get_fully_qualified_name()
    change = h.client.create_client(ChangeState, f"{base}/change_state")
    get = h.client.create_client(GetState, f"{base}/get_state")

    def state():
        return h.call(get, GetState.Request()).current_state.label

    def transition(tid):
        req = ChangeState.Request()
        req.transition.id = tid
        return h.call(change, req).success

    time.sleep(0.5)
    assert state() == "unconfigured" and opened == []
    res = h.set_target((10, 10, 20, 20))
    assert not res.success and "node not active (state: unconfigured)" in res.status_message
    values = h.wait_diag(lambda v: True, 5.0)
    assert values["_level"] == 1 and "unconfigured" in values["_message"]

    assert transition(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
    assert len(opened) == 1 and opened[0].model is not None
    assert h.client.count_subscribers("/rgb/image") == 0, "no subscriptions before activate"
    assert transition(Transition.TRANSITION_ACTIVATE) and state() == "active"
    assert wait_for(lambda: h.client.count_subscribers("/rgb/image") == 1
                    and h.client.count_subscribers("/thermal/image") == 1, 5.0)
    h.start_tracking()
    start = h.n_dets()
    assert wait_for(lambda: h.n_dets() - start >= 3, 10.0)

    assert transition(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
    assert wait_for(lambda: h.client.count_subscribers("/rgb/image") == 0, 5.0)
    res = h.set_target((10, 10, 20, 20))
    assert not res.success and "not active (state: inactive)" in res.status_message
    # inactive: subscription settings may change now
    assert all(r.successful for r in h.set_params(qos__reliability="reliable"))
    assert transition(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
    assert opened[0].model is None, "cleanup must release the model (GPU memory)"
    # reconfigure + activate works again and the target is gone (IDLE)
    assert transition(Transition.TRANSITION_CONFIGURE) and transition(Transition.TRANSITION_ACTIVATE)
    assert len(opened) == 2 and h.node._tracker.state.value == "idle"


@pytest.mark.parametrize("executor", executor_params())
def test_parameter_changes_accepted_and_rejected_with_reasons(make_harness, executor):
    h = make_harness(executor=executor, overrides=NEVER_LOST)
    wait_active(h)

    def one(**kv):
        (r,) = h.set_params(**kv)
        return r

    assert one(sync__slop=0.05).successful
    assert h.node.sync.slop_ns == 50_000_000, "slop must reach the running synchroniser"
    r = one(sync__slop=5.0)
    assert not r.successful and ("out of range" in r.reason.lower() or "outside" in r.reason), r.reason
    r = one(thermal__normalization="fixed")
    assert not r.successful and "lo < hi" in r.reason
    assert one(thermal__range=[7000, 9000]).successful and one(thermal__normalization="fixed").successful
    assert tuple(h.node._settings.normalizer.value_range) == (7000.0, 9000.0)
    assert h.node._settings.normalizer.method == "fixed"
    r = one(qos__reliability="reliable")
    assert not r.successful and "deactivate" in r.reason
    r = one(model__checkpoint="/tmp/other.pth")
    assert not r.successful and "read-only after configure" in r.reason
    r = one(registration__homography=[1.0, 0.0])
    assert not r.successful and "expected 9 numbers" in r.reason
    r = one(thermal__normalization="median")
    assert not r.successful and "not one of" in r.reason
    r = one(autostart=False)
    assert not r.successful and "read-only" in r.reason
    r = one(sync__slop="fast")  # a wrong type is one line naming parameter, value and type
    assert not r.successful and r.reason == "sync.slop: 'fast' is a string, expected a double (e.g. 0.03)", r.reason
    r = one(tracking__lost_frames=2.5)
    assert not r.successful and "tracking.lost_frames: 2.5 is a double, expected an integer" in r.reason
    assert one(debug__max_rate_hz=5.0).successful and one(tracking__label="person").successful
    assert h.node._settings.label == "person"
    assert h.node.get_parameter("sync.slop").value == 0.05, "rejected values must not be stored"
    assert one(sync__slop=1).successful, "an integer for a double is accepted"
    assert h.node.sync.slop_ns == 1_000_000_000 and h.node._values["sync.slop"] == 1.0


@pytest.mark.parametrize("pub,sub", [("reliable", "best_effort"), ("best_effort", "best_effort"),
                                     ("reliable", "reliable")])
def test_publisher_reliabilities(make_harness, pub, sub):
    h = make_harness(overrides=dict(NEVER_LOST, **{"qos.reliability": sub}), pub_reliability=pub)
    wait_active(h)
    scene = MovingTarget()
    h.stream(scene, rate_hz=20.0)
    assert wait_for(lambda: len(h.node.cache) >= 3, 10.0), f"{pub} publisher -> {sub} subscription: no pairs"
    assert h.set_target(scene.box(h.published[max(h.published)])).success
    start = h.n_dets()
    assert wait_for(lambda: h.n_dets() - start >= 3, 10.0)


def test_overlays_only_while_subscribed(make_harness):
    from sensor_msgs.msg import Image

    scene = MovingTarget(thermal_scale=0.5)
    h = make_harness(overrides=dict(NEVER_LOST, **{"registration.homography": scene.homography(),
                                                   "debug.max_rate_hz": 0.0}))
    wait_active(h)
    h.stream(scene, rate_hz=20.0)
    assert wait_for(lambda: h.node.stats.snapshot()["counters"].get("pairs_processed", 0) >= 5, 10.0)
    assert h.node.stats.snapshot()["counters"].get("overlays_published", 0) == 0, "overlay drawn with no subscriber"
    got = {"rgb": [], "tir": []}
    base = h.node.get_fully_qualified_name()
    h.client.create_subscription(Image, f"{base}/debug/image", got["rgb"].append, 5)
    h.client.create_subscription(Image, f"{base}/debug/thermal_image", got["tir"].append, 5)
    assert h.set_target(scene.box(h.published[max(h.published)])).success
    assert wait_for(lambda: len(got["rgb"]) >= 2 and len(got["tir"]) >= 2, 10.0)
    rgb, tir = got["rgb"][-1], got["tir"][-1]
    assert (rgb.encoding, rgb.width, rgb.height, rgb.header.frame_id) == ("bgr8", 320, 256, "camera_rgb")
    assert (tir.encoding, tir.width, tir.height, tir.header.frame_id) == ("bgr8", 160, 128, "camera_thermal")
    assert stamp_of(rgb) in h.published and stamp_of(tir) in h.published
    assert all(r.successful for r in h.set_params(debug__overlay=False))
    time.sleep(0.3)
    n = len(got["rgb"])
    p = h.node.stats.snapshot()["counters"]["pairs_processed"]
    assert wait_for(lambda: h.node.stats.snapshot()["counters"]["pairs_processed"] >= p + 5, 10.0)
    assert len(got["rgb"]) == n, "debug.overlay=false must stop the overlays at runtime"


@pytest.mark.parametrize("params,rgb_compressed,tir_compressed", [
    ({"transport": "compressed"}, True, True),
    ({"transport.rgb": "compressed"}, True, False),  # a common rig: compressed RGB, raw thermal
    ({"transport": "compressed", "transport.thermal": "raw"}, True, False),
    ({"transport.thermal": "compressed"}, False, True),
])
def test_compressed_transport_per_stream(make_harness, params, rgb_compressed, tir_compressed):
    import cv2
    from sensor_msgs.msg import CompressedImage, Image

    from ckd_ros.frames.ros_image import array_to_image_msg

    h = make_harness(overrides=dict(NEVER_LOST, **params))
    wait_active(h)
    topics = [f"/{s}/image" + ("/compressed" if c else "") for s, c in (("rgb", rgb_compressed),
                                                                        ("thermal", tir_compressed))]
    assert wait_for(lambda: all(h.client.count_subscribers(t) == 1 for t in topics), 5.0)
    pubs = [h.client.create_publisher(CompressedImage if "/compressed" in t else Image, t, 5) for t in topics]
    scene = MovingTarget()
    sent = []

    def publish():
        k = len(sent)
        rgb, tir = scene.frame(k)
        stamp = time.time_ns()
        for pub, topic, img, fmt, frame, enc in (
                (pubs[0], topics[0], rgb, ".jpg", "camera_rgb", "rgb8"),
                (pubs[1], topics[1], tir, ".png", "camera_thermal", "mono16")):
            if topic.endswith("/compressed"):
                msg = CompressedImage(format=fmt[1:])
                msg.header.stamp.sec, msg.header.stamp.nanosec = stamp // 10**9, stamp % 10**9
                msg.header.frame_id = frame
                bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
                msg.data = cv2.imencode(fmt, bgr)[1].tobytes()
            else:
                msg = array_to_image_msg(img, enc, stamp_ns=stamp, frame_id=frame)
            pub.publish(msg)
        sent.append((stamp, k))
        return False

    wait_for(lambda: publish() or len(h.node.cache) >= 2, 10.0, 0.05)
    stamp, k = sent[-1]
    res = h.set_target(scene.box(k), stamp_ns=stamp)
    assert res.success, res.status_message
    start = h.n_dets()
    wait_for(lambda: publish() or h.n_dets() - start >= 3, 10.0, 0.05)
    dets = h.dets_since(start)
    assert len(dets) >= 3 and all(stamp_of(d) in dict(sent) and d.detections for d in dets)
