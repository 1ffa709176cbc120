"""Train: LoRA/QLoRA/full fine-tuning of the base model on a dataset (`runs/<id>/`), and export."""

from selftune.training.launch import is_main_process, run_train

__all__ = ["is_main_process", "run_train"]
