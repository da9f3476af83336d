"""Data preparation: fetching and verifying the real datasets, PTB tokens, AN4 features."""
