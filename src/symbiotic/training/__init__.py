"""Training control: ratio/criterion/learning-rate schedules and rollback snapshots."""
