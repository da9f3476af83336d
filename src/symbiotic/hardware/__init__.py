"""Hardware side of symbiotic training.

``measure`` is the single place that turns a callable into a latency number (and
records which machine produced it); ``lhp`` turns a measured latency profile
into latency hysteresis points (LHPs), the only dimensions worth choosing
because every other one is beaten by some larger dimension.
"""
