"""llm-autoscaler: SLO-aware, forecasting autoscaling for LLM inference fleets on Kubernetes.

The package is laid out in rooms, each with one job and an ``__init__`` that says what it may
import (``tests/test_layout.py`` enforces the rules; ``docs/architecture.md`` is the map):
``core/`` (the pure decision core), ``policies/``, ``engines/``, ``perf/`` and ``hpa/`` (what the
policies stand on), ``live/`` (the control loop of ``serve``), ``clients/`` (the only code that
talks to Prometheus or Kubernetes), ``simulation/`` and ``emulation/``, ``traces/``, ``offline/``
(report, forecast-eval) and ``cli/`` (one module per verb; ``serve``'s composition root).

Four modules stay at this level, on purpose, because every room (or most) uses them and none
owns them:

- ``errors``: the project's exception tree; every room raises these and the CLI maps them to
  exit codes, so it sits below all of them.
- ``config``: the service configuration (``serve``'s YAML), read by the live loop, the CLI, the
  cache, the gateway's PromQL and the report; a pydantic schema, not a room's logic.
- ``kubernetes_support``: the Kubernetes versions ``deploy/`` and the report's manifests
  support, shared by ``hpa/``, ``offline/report/`` and the deploy tests.
- ``shared_data``: where the shared traces and measurements are found (``$LLM_AUTOSCALER_DATA``),
  used by ``perf/`` and ``traces/`` fitting, the benchmarks and the notebooks.
"""

__version__ = "0.1.0"
