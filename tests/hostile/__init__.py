"""The hostile-input corpus: generated models and artifacts that `mlc` must refuse cleanly."""
