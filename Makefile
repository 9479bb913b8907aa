# Entry points for a new user. `make demo` needs no GPU, no downloads beyond the set-up, no weights.
#   make demo DEMO_ARGS="duration:=30 rviz:=true scenario:=crossover"
# The demo-* targets rebuild the shipped demo model (docs/demo.md): ~40 min each on a 2-core CPU.
.PHONY: demo setup test demo-data demo-model demo-model-rgb-only demo-eval

DEMO_ARGS ?=
PY := .venv/bin/python
TRAIN := out/demo_train

demo:
	bash scripts/demo.sh $(DEMO_ARGS)

setup:
	bash scripts/setup_env.sh

test:
	bash scripts/test.sh

demo-data: setup
	$(PY) -m ckd_ros.synthetic.dataset $(TRAIN)/data_rgbt --sequences 160 --frames 80 --seed-base 1000

demo-model: demo-data
	$(PY) -m ckd_ros.cli train --config config/train_demo.yaml
	$(PY) -m ckd_ros.demo.release $(TRAIN)/runs/rgbt --out engines --name demo_small

demo-model-rgb-only: setup
	$(PY) -m ckd_ros.synthetic.dataset $(TRAIN)/data_rgb_only --sequences 160 --frames 80 --seed-base 1000 --rgb-only
	$(PY) -m ckd_ros.cli train --config config/train_demo.yaml \
	    "data.datasets=[{type: lasher, root: $(TRAIN)/data_rgb_only}]" output.dir=$(TRAIN)/runs/rgb_only
	$(PY) -m ckd_ros.demo.release $(TRAIN)/runs/rgb_only --out $(TRAIN)/release_rgb_only --name demo_small_rgb_only

demo-eval: setup
	$(PY) -m ckd_ros.demo.evaluate --onnx engines/demo_small.onnx \
	    --rgb-only-onnx $(TRAIN)/release_rgb_only/demo_small_rgb_only.onnx \
	    --real ../shared/data/vtuav_bus1 --work out/demo_eval --per-scenario 3 --frames 120 --json out/demo_eval/report.json
