"""Engine metric profiles: which Prometheus series carry each signal, per serving engine.

One module per engine (``vllm``, ``vllm_v0``, ``sglang``, ``tgi``, ``triton_trtllm``, ``dcgm``),
listed in :mod:`autoscaler.engines.registry`; :mod:`autoscaler.engines.promql` turns a profile
into the batched PromQL of one tick. See ``docs/adding-an-engine.md``.

May import: the core, ``autoscaler.config`` (a gateway workload's settings) and
``autoscaler.errors``. Never a client, the simulator, a policy or the live loop
(``tests/test_layout.py``): it describes series, it does not query them.
"""
