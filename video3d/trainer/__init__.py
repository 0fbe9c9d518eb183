"""Training and planning of 3D ConvNets with stageplan: the ``video3d`` workload's trainer.

* :class:`VideoTrainer`: a transition function of the Trial protocol (``trainer(trial)``) that
  trains a model from :mod:`video3d.models` on data from :mod:`video3d.data` under a state's
  sampling, clip length and learning rate; also retrains fixed schedules and runs the final
  10-clip x 3-crop protocol. DDP through ``torchrun`` (rank 0 reports, the stop is broadcast).
* :class:`TrainConfig` and :data:`PRESETS` (the paper's datasets, ``synthetic``, ``tiny``),
  :func:`load_config_file` (JSON or TOML overrides).
* :func:`load_data`: resolve and check an index directory (generating the synthetic dataset on
  first use).
* :func:`run_planning`: the whole job (plan, pictures, test accuracy, comparison with a
  val-selected hand-tuned grid and a cosine default: :func:`baseline_schedules`,
  :func:`run_baselines`); :func:`hand_tuned_plan`, :func:`graph_for`, :func:`rule_for`.
* :func:`plot_graph`, :func:`plot_curves` (matplotlib optional).

Nothing heavy is imported until used.

Example:
    >>> from video3d.trainer import get_preset, graph_for
    >>> cfg = get_preset("synthetic")
    >>> len(graph_for(cfg).edges), cfg.clip_batch(32)
    (22, (8, 1))
"""

from __future__ import annotations

from video3d._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "ConfigError": "_config",
    "PRESETS": "_config",
    "TrainConfig": "_config",
    "get_preset": "_config",
    "list_presets": "_config",
    "load_config_file": "_config",
    "DataBundle": "_data",
    "DataError": "_data",
    "FrameCache": "_data",
    "default_data_dir": "_data",
    "load_data": "_data",
    "make_dataset": "_data",
    "DistContext": "_ddp",
    "FollowerTrial": "_ddp",
    "LeaderTrial": "_ddp",
    "dist_context": "_ddp",
    "close_distributed": "_ddp",
    "init_distributed": "_ddp",
    "DEFAULT_BASELINE": "_job",
    "HAND_TUNED_GRID": "_job",
    "JobResult": "_job",
    "baseline_schedules": "_job",
    "run_baselines": "_job",
    "schedule_plan": "_job",
    "graph_for": "_job",
    "hand_tuned_plan": "_job",
    "rule_for": "_job",
    "run_planning": "_job",
    "test_plan_checkpoint": "_job",
    "plot_curves": "_plots",
    "plot_graph": "_plots",
    "save_pictures": "_plots",
    "ProgressBar": "_progress",
    "VideoTrainer": "_trainer",
    "build_model_for": "_trainer",
    "check_model": "_trainer",
    "load_checkpoint_file": "_trainer",
    "planning_metric": "_trainer",
    "topk_correct": "_trainer",
}

# One list: _EXPORTS (name -> sub-module) is the public API; type checkers see the names
# through the module-level __getattr__ (as Any), readers through the sub-modules' own docs.
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
