"""Language models built from H-LSTM layers, the stacked-LSTM baseline, and parameter counting."""
