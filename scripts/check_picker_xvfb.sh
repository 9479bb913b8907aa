#!/bin/bash
# The target picker for real, in a virtual X server: a GUI OpenCV (separate venv), the synthetic
# camera, the real tracker node (demo_small on ONNX Runtime) and xdotool as the user.
#   needs: apt-get install xvfb xdotool; a venv with opencv-python (GUI build) + numpy + pyyaml:
#     python3 -m venv .venv-gui && .venv-gui/bin/pip install opencv-python numpy pyyaml typing_extensions
#   run:   scripts/check_picker_xvfb.sh [OUT_DIR]     (about 60 s; CKD_ROS_DISTRO=humble for Humble)
# Checks: a DISPLAY without X server gives the service-call hint and exit 2 (no Qt abort); a drag
# sets the target (the node's answer "OK: tracking target"); `c` reports "target cleared"; `q`
# quits with 0; Ctrl-C of the camera ends cleanly. Screenshots (XWD) of each step land in OUT_DIR.
set -u
cd "$(dirname "$0")/.."
OUT="${1:-$(mktemp -d)}"
mkdir -p "$OUT"
GUI="${CKD_GUI_PYTHON:-.venv-gui/bin/python}"
export PYTHONPATH="$PWD" ROS_DOMAIN_ID="${CKD_TEST_DOMAIN_ID:-42}"
. scripts/ros_env.sh
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

DISPLAY=:77 timeout 60 "$GUI" -m ckd_ros.node.select_target >"$OUT/nodisplay.log" 2>&1
rc=$?
check "no X server: exit 2 with the ros2 service call (got $rc)" \
  "[ $rc = 2 ] && grep -q 'ros2 service call /ckd_tracker/set_target' '$OUT/nodisplay.log'"

Xvfb :99 -screen 0 1280x1024x24 -fbdir "$OUT" >/dev/null 2>&1 & XV=$!
sleep 1
export DISPLAY=:99
.venv/bin/python -m ckd_ros.demo.camera --ros-args -p width:=320 -p height:=256 -p rate_hz:=10.0 \
  >"$OUT/camera.log" 2>&1 & CAM=$!
.venv/bin/python -m ckd_ros.node.tracker_node --ros-args -p model.onnx:=engines/demo_small.onnx \
  -p backend:=onnxruntime -p registration.mode:=camera_info >"$OUT/tracker.log" 2>&1 & TRK=$!
"$GUI" -m ckd_ros.node.select_target --tracker /ckd_tracker >"$OUT/picker.log" 2>&1 & PICK=$!
for _ in $(seq 90); do grep -q "active:" "$OUT/tracker.log" && break; sleep 1; done
sleep 3
WIN=$(xdotool search --name "select_target" | head -1)
check "window opened" "[ -n '$WIN' ]"
xdotool mousemove --window "$WIN" 100 100 mousedown 1; sleep 0.5
xdotool mousemove --window "$WIN" 150 140; sleep 0.5; cp "$OUT/Xvfb_screen0" "$OUT/frozen.xwd"
xdotool mousemove --window "$WIN" 160 150 mouseup 1; sleep 4; cp "$OUT/Xvfb_screen0" "$OUT/tracking.xwd"
check "drag sets the target" "grep -q 'OK: tracking target' '$OUT/picker.log'"
xdotool key --window "$WIN" c; sleep 2
check "c reports the node's answer" "grep -q 'target cleared' '$OUT/picker.log'"
kill -INT $TRK; wait $TRK
sleep 4; cp "$OUT/Xvfb_screen0" "$OUT/stale.xwd"
xdotool key --window "$WIN" q; sleep 2
kill -0 $PICK 2>/dev/null && { kill -INT $PICK; echo "picker did not quit on q"; fail=1; }
wait $PICK; rc=$?
check "q quits with 0 (got $rc)" "[ $rc = 0 ]"
"$GUI" -m ckd_ros.node.select_target --tracker /ckd_tracker >"$OUT/picker_ctrlc.log" 2>&1 & PICK=$!
sleep 6; kill -INT $PICK; wait $PICK; rc=$?
check "picker Ctrl-C exits 0 without a traceback (got $rc)" "[ $rc = 0 ] && ! grep -q Traceback '$OUT/picker_ctrlc.log'"
kill -INT $CAM; wait $CAM; rc=$?
check "camera Ctrl-C exits 0 without a traceback (got $rc)" "[ $rc = 0 ] && ! grep -q Traceback '$OUT/camera.log'"
kill $XV 2>/dev/null
echo "logs and screenshots: $OUT"
exit $fail
