"""The report stage's work: one self-contained HTML page per task from the flow's outputs."""
