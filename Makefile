# Both targets set up .venv on first use (finding a Python >= 3.12 by themselves).
.PHONY: demo test bench

demo:  ## the main job: one RLM run end to end, tracked in ./mlflow.db
	scripts/dev.sh demo $(ARGS)

test:  ## the whole test suite
	scripts/dev.sh test -q $(ARGS)

bench:  ## dspy-rlm bench, the side-by-side comparison (ARGS="--quick" or "--suite core")
	scripts/dev.sh run "$$(scripts/dev.sh env)/bin/dspy-rlm" bench $(ARGS)
