"""Weight pruning: the statistics reports and benchmarks read (parameters, sparsity per layer,
FLOPs, exported bytes). The graph rewrites themselves are passes (`passes/prune_magnitude.py`)."""

from mlc.prune.stats import LayerStats, ModelStats, model_stats

__all__ = ["LayerStats", "ModelStats", "model_stats"]
