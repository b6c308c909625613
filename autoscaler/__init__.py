"""llm-autoscaler: SLO-aware, forecasting autoscaling for LLM inference fleets on Kubernetes.

The package is layered so that the decision core (signals -> forecast -> policy) is pure and is
shared by the live service, the simulator, the report and the demo: what the benchmarks measure is
what production runs. I/O lives at the edges (trace readers, CLI, later the Prometheus and
Kubernetes clients).
"""

__version__ = "0.1.0"
