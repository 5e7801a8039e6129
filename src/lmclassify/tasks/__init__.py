"""Tasks: what differs between problem shapes, behind one base class (``base.Task``)."""
from ..networks import SEQUENCE, TOKEN
from .base import Task
from .multi_label import MultiLabel, split_labels
from .registry import TASKS, infer_task, make_task, task_from_saved
from .regression import Regression
from .single_label import SingleLabel
from .token_labels import TokenLabels, first_pieces

__all__ = ["Task", "SEQUENCE", "TOKEN", "TASKS", "SingleLabel", "MultiLabel", "Regression", "TokenLabels",
           "infer_task", "make_task", "task_from_saved", "split_labels", "first_pieces"]
