"""The ipywidgets model picker for JupyterLab: `pick_model()` shows one in a notebook."""

from transferlab.widgets.picker import ModelPicker, pick_model
from transferlab.widgets.progress import RunProgress
from transferlab.widgets.state import FilterValues, find_models, finetune_parameters

__all__ = [
    "FilterValues",
    "ModelPicker",
    "RunProgress",
    "find_models",
    "finetune_parameters",
    "pick_model",
]
