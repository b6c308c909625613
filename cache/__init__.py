"""Modelcar image prefetch: node inventory, planner, executor (Jobs), GC, leader election.

Not built yet (issue "Model-cache prewarming"); the package exists so the layout matches the
project card and import contracts can be tested from the start.
"""
