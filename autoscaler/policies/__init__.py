"""Scaling policies: ours (``forecast``) and the baselines it is compared with.

Every policy is pure: a :class:`~autoscaler.core.signals.SignalSnapshot` (plus the policy's own
history) in, a :class:`~autoscaler.core.recommendation.Recommendation` with reasons out.
Policies that publish to an HPA declare an :class:`~autoscaler.hpa.spec.HpaSpec`; the others act
natively, as their own controllers would in a cluster. ``registry`` lists them alphabetically.

May import: the core (``replica_states`` included), ``autoscaler.hpa`` (the HPA specs they publish
to), ``autoscaler.perf`` (the capacity model), ``forecasting`` and ``autoscaler.errors``. Never
a client, the live loop, the simulator or the CLI (``tests/test_layout.py``).
"""
