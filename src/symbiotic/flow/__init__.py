"""The four steps of symbiotic training plus the baseline, written once against tasks.base.Task."""
