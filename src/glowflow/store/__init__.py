"""Models on disk: one folder format for every model of every family (:mod:`.record`), one
writer (:mod:`.writer`), one loader (:mod:`.loader`), the generated card (:mod:`.card`) and
the Hugging Face Hub transport (:mod:`.hub`)."""

from .data import DataSpec
from .loader import LoadedModel, from_pretrained, load_model, resolve
from .record import FILES, FORMAT, is_model_folder, read_record
from .writer import save_model

__all__ = [
    "DataSpec",
    "FILES",
    "FORMAT",
    "LoadedModel",
    "from_pretrained",
    "is_model_folder",
    "load_model",
    "read_record",
    "resolve",
    "save_model",
]
