"""The live control loop of ``serve``: every tick, replica states and PromQL → snapshots →
policy → store.

``collection`` turns a tick's Prometheus results into snapshots (the pure
``autoscaler.core.sample_checks``, which the engines share, drops impossible samples;
``completeness`` says whether the rate window is whole), ``ksm_replicas`` reads replica states from
kube-state-metrics, ``loop`` runs the ticks, ``store`` keeps the last recommendation per workload
for the servers, and ``loop_metrics`` exports the loop's own health.

May import: the core, the policies and what they stand on (engines, perf), the Prometheus
client's protocol in ``autoscaler.clients``, ``autoscaler.config``, ``autoscaler.errors`` and the
pure ``autoscaler.core.replica_states`` and ``autoscaler.core.sample_checks``. The simulator and the
decision side never import this room: they share the core with it, not the loop
(``tests/test_layout.py``).
"""
