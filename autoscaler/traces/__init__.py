"""Request traces: readers for the public formats, rate scaling, and the synthetic default."""
