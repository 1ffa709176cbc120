"""Train: LoRA/QLoRA/full fine-tuning of the base model on a dataset (`runs/<id>/`).

`run_train` is the stage's entry point; `fit.fit` is the one training loop, which `train` and
distill's SFT phase both call. Exporting a run for other engines is `selftune.export`.
"""

from selftune.training.launch import is_main_process, run_train

__all__ = ["is_main_process", "run_train"]
