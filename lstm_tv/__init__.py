"""lstm-tv: per-frame video classification with memory (CNN frame encoder -> LSTM -> per-frame class)."""

__version__ = "0.1.0"
