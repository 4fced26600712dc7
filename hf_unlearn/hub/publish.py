"""Upload an upload folder to the Hub with ``huggingface_hub`` (``create_repo`` + ``upload_folder``).

The token comes from the ``token`` argument, else ``HF_TOKEN``, else the saved login
(``hf auth login``). It is handed to ``HfApi`` and travels only in the ``Authorization`` header;
it is never printed, logged or put in an error message.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from ..artifacts import MANIFEST_FILE
from .folder import UploadFolder, build_upload_folder

logger = logging.getLogger(__name__)

_NETWORK_ERRORS = {
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TimeoutException",
    "NetworkError",
    "TransportError",
    "ProxyError",
    "RemoteProtocolError",
    "SSLError",
    "ConnectionError",
}


class PublishError(RuntimeError):
    """Publishing failed; ``folder`` is the upload folder, still on disk, when it was built."""

    def __init__(self, message: str, folder: UploadFolder | None = None):
        super().__init__(message)
        self.folder = folder


class NoTokenError(PublishError):
    """No Hugging Face token was given or found."""


class PermissionDeniedError(PublishError):
    """The Hub refused the token (401) or the write (403/404: someone else's repo, read-only token)."""


class HubUnreachableError(PublishError):
    """The Hub could not be reached (network down, DNS, proxy, ``HF_HUB_OFFLINE``)."""


@dataclass
class PublishResult:
    repo_id: str
    folder: UploadFolder
    private: bool
    dry_run: bool
    url: str | None = None
    commit_url: str | None = None


def _retry_hint(folder: UploadFolder, repo_id: str, private: bool) -> str:
    vis = "--private" if private else "--public"
    return (
        f"The upload folder is kept at {folder.path}. Retry with:\n"
        f"  hf-unlearn push {shlex.quote(str(folder.run_dir))} --repo_id {repo_id} {vis}\n"
        f"or upload that folder as it is with:\n"
        f"  hf upload {repo_id} {shlex.quote(str(folder.path))} . {'--private' if private else ''}".rstrip()
    )


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, (OfflineModeIsEnabled, ConnectionError, TimeoutError)):
        return True
    return any(c.__name__ in _NETWORK_ERRORS for c in type(exc).__mro__)


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _http_error(exc: HfHubHTTPError, folder: UploadFolder, repo_id: str, private: bool, token: str) -> PublishError:
    status = _status(exc)
    server = _scrub(str(getattr(exc, "server_message", None) or "").strip(), token)
    said = f" The Hub said: {server}" if server else ""
    hint = _retry_hint(folder, repo_id, private)
    namespace = repo_id.split("/")[0] if "/" in repo_id else "your account"
    if status == 401:
        return PermissionDeniedError(
            f"The Hub rejected the token (HTTP 401): it is invalid, expired or revoked. Create a token with "
            f"write access at https://huggingface.co/settings/tokens and pass it via HF_TOKEN or "
            f"`hf auth login`.{said}\n{hint}",
            folder,
        )
    if status in (403, 404):
        return PermissionDeniedError(
            f"Permission denied for {repo_id} (HTTP {status}): this token cannot write to the namespace "
            f"'{namespace}'. The repository may belong to someone else, or the token is read-only or a "
            f"fine-grained token without write access to it. Use a --repo_id under your own namespace or an "
            f"organisation you can write to, or a write token of the owner.{said}\n{hint}",
            folder,
        )
    return PublishError(f"The Hub answered HTTP {status} while publishing {repo_id}.{said}\n{hint}", folder)


def _status(exc: HfHubHTTPError) -> int | None:
    return exc.response.status_code if getattr(exc, "response", None) is not None else None


def _ensure_repo(api: HfApi, repo_id: str, private: bool, endpoint: str) -> str:
    """Create the repo, or accept an existing one we may be able to write to.

    Same logic as ``create_repo(exist_ok=True)`` (409 = exists; 401/402/403 = maybe exists and
    writable), done here because that fallback builds a ``RepoUrl`` that rejects endpoints other
    than the one huggingface_hub read from ``HF_ENDPOINT`` at import time.
    """
    try:
        return str(api.create_repo(repo_id, private=private, exist_ok=False, repo_type="model"))
    except HfHubHTTPError as e:
        if _status(e) == 409:
            return f"{endpoint}/{repo_id}"
        if _status(e) in (401, 402, 403):
            try:
                api.repo_info(repo_id, repo_type="model")
            except HfHubHTTPError:
                raise e from None
            return f"{endpoint}/{repo_id}"
        raise


def publish(
    run_dir: str | os.PathLike,
    repo_id: str,
    private: bool = True,
    token: str | None = None,
    dry_run: bool = False,
    *,
    endpoint: str | None = None,
    dest: str | os.PathLike | None = None,
    license: str | None = None,
    commit_message: str | None = None,
    overwrite: bool = False,
    base_model: str | None = None,
    merge_adapter: bool = False,
) -> PublishResult:
    """Build the upload folder of ``run_dir`` and upload it to the model repo ``repo_id``.

    ``private`` applies when the repo is created (an existing repo keeps its visibility).
    ``dry_run`` builds the folder and stops: no token or network needed. ``endpoint`` defaults to
    ``HF_ENDPOINT`` (read at call time) or the huggingface_hub default. Raises
    :class:`~hf_unlearn.hub.folder.RunDirError` for a run dir that cannot be published,
    :class:`NoTokenError`, :class:`PermissionDeniedError`, :class:`HubUnreachableError` or
    :class:`PublishError`; in the last three the folder stays on disk and the message says how to retry.
    ``run_dir`` must hold a complete, intact manifest (``IntegrityError`` otherwise); ``dest`` must be
    empty, absent or a previous upload folder unless ``overwrite`` (``OutputFolderError``). A LoRA folder is
    published as its adapter on ``base_model`` (default: the Hub id of its recorded base) or, with
    ``merge_adapter``, as the merged model (:func:`~hf_unlearn.hub.folder.build_upload_folder`).
    """
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as e:
        raise ValueError(f"invalid --repo_id {repo_id!r}: {e}") from None
    folder = build_upload_folder(
        run_dir,
        dest,
        repo_id=repo_id,
        license=license,
        overwrite=overwrite,
        base_model=base_model,
        merge_adapter=merge_adapter,
    )
    result = PublishResult(repo_id=repo_id, folder=folder, private=private, dry_run=dry_run)
    if dry_run:
        return result

    token, endpoint = _token_and_endpoint(folder, repo_id, private, token, endpoint)
    message = commit_message or f"hf-unlearn: publish {folder.method or 'unknown'} unlearned model"
    result.url, result.commit_url = _upload(folder, repo_id, private, token, endpoint, message)
    return result


def _token_and_endpoint(
    folder: UploadFolder, repo_id: str, private: bool, token: str | None, endpoint: str | None
) -> tuple[str, str]:
    """The token (argument, ``HF_TOKEN`` or the login) and endpoint to publish with, or the error that says why not."""
    token = token or get_token()
    if not token:
        raise NoTokenError(
            "No Hugging Face token: pass token=..., set HF_TOKEN (or the variable named by --token_env), "
            "or log in once with `hf auth login`.\n" + _retry_hint(folder, repo_id, private),
            folder,
        )
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    if constants.HF_HUB_OFFLINE:
        raise HubUnreachableError(
            f"HF_HUB_OFFLINE is set, so nothing can be sent to {endpoint}. Unset it to publish.\n"
            + _retry_hint(folder, repo_id, private),
            folder,
        )
    return token, endpoint


def _upload(
    folder: UploadFolder, repo_id: str, private: bool, token: str, endpoint: str, message: str
) -> tuple[str, str | None]:
    """Create (or reuse) the repo and upload the folder in one commit: (repo url, commit url)."""
    api = HfApi(endpoint=endpoint, token=token, library_name="hf-unlearn")
    logger.info("publishing %d files (%d bytes) to %s", len(folder.files), folder.total_bytes, repo_id)
    try:
        url = _ensure_repo(api, repo_id, private, endpoint)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder.path),
            repo_type="model",
            commit_message=message,
            ignore_patterns=[MANIFEST_FILE],  # the upload folder's own manifest stays local
        )
    except HfHubHTTPError as e:
        raise _http_error(e, folder, repo_id, private, token) from e
    except Exception as e:
        if _is_network_error(e):
            raise HubUnreachableError(
                f"Could not reach the Hub at {endpoint} ({type(e).__name__}: {_scrub(str(e), token)}). "
                "Check the network, proxy or HF_ENDPOINT. Each commit is atomic: files that did not arrive "
                "will be sent again on retry.\n" + _retry_hint(folder, repo_id, private),
                folder,
            ) from e
        if isinstance(e, ValueError) and "metadata" in str(e):
            raise PublishError(
                f"The Hub rejected the card metadata: {_scrub(str(e), token)}\n"
                + _retry_hint(folder, repo_id, private),
                folder,
            ) from e
        raise
    return str(url), getattr(info, "commit_url", None)
