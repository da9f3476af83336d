"""Task metrics kept apart from training so evaluation and reports share one definition (ASR: WER, CER)."""
