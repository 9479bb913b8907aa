# Entry points for a new user. `make demo` needs no GPU, no downloads beyond the set-up, no weights.
#   make demo DEMO_ARGS="duration:=30 rviz:=true scenario:=crossover"
.PHONY: demo setup test demo-model demo-model-rgb

DEMO_ARGS ?=

demo:
	bash scripts/demo.sh $(DEMO_ARGS)

setup:
	bash scripts/setup_env.sh

test:
	bash scripts/test.sh
