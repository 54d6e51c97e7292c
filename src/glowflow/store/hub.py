"""Hugging Face Hub transport for model folders (the optional ``hub`` extra).

:func:`download` fetches a repo's model files into the client's cache (or finds them
there: ``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` never touch the network) and returns
the snapshot folder; :func:`push_to_hub` uploads a model folder. Only the three files of
the format are fetched or sent, so nothing else in a repo (pickles included) is ever read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from ..errors import MissingExtraError, MissingFileError
from .record import FILES, read_record

PathLike = Union[str, Path]


def _hub() -> Any:
    try:
        import huggingface_hub
    except ModuleNotFoundError:
        raise MissingExtraError(
            "Hugging Face repo ids need the hub extra: pip install 'glowflow[hub]'"
        ) from None
    return huggingface_hub


def download(
    repo_id: str,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    local_files_only: bool = False,
) -> Path:
    """The local folder holding ``repo_id``'s model files (downloaded and cached)."""
    hub = _hub()
    try:
        folder = hub.snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=list(FILES),
            local_files_only=local_files_only,
        )
    except Exception as error:  # the client's own error types (offline, not found, ...)
        raise MissingFileError(f"cannot get Hugging Face repo {repo_id!r}: {error}") from None
    return Path(folder)


def push_to_hub(
    folder: PathLike,
    repo_id: str,
    token: Optional[str] = None,
    private: bool = False,
    commit_message: str = "Upload glowflow model",
    api: Optional[Any] = None,
) -> str:
    """Upload a model folder's files to ``repo_id`` (created if missing); returns the
    commit URL. ``api`` is an ``HfApi`` (default: a new one with ``token``)."""
    folder = Path(folder)
    read_record(folder)  # refuse anything that is not a model folder
    api = api if api is not None else _hub().HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    result = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        allow_patterns=list(FILES),
        commit_message=commit_message,
    )
    return str(result)
