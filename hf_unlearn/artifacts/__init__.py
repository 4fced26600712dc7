"""The artefact contract: how every file of hf_unlearn is written, named, verified and described.

- ``writing.py``: the one atomic writer (unique temporary name, fsync, rename) and hashing while
  writing;
- ``manifest.py``: ``manifest.json`` (sha256 of every file, written last) and its verification;
- ``output.py``: output folders checked before any work and renamed into place whole;
- ``locks.py``: one request at a time on a folder;
- ``commitment.py``: the salted forget-set commitment (and the plain digest for private records);
- ``names.py``: the names of private and public files (``cards/privacy.py`` builds its rules from
  them); ``versions.py``: the library versions recorded everywhere.

This package sits at the bottom: it imports nothing from ``hf_unlearn`` but the version string.
"""

from .commitment import (
    forget_set_commitment,
    ids_digest,
    load_or_create_salt,
    new_salt,
    read_salt,
    verify_commitment,
    write_salt,
)
from .locks import BusyError, folder_lock
from .manifest import IntegrityError, folder_files, read_manifest, verify_files, verify_folder, write_manifest
from .names import *  # noqa: F403
from .names import PRIVATE_DIRS, PRIVATE_FILES  # noqa: F401
from .output import DiskSpaceError, OutputFolderError, check_free_space, check_output_folder, staged_folder
from .versions import library_versions
from .writing import (
    KILL_ENV,
    atomic_save_tensors,
    atomic_write,
    atomic_write_bytes,
    atomic_write_folder,
    atomic_write_json,
    atomic_write_text,
    crash_point,
    is_temporary,
    private_temp_dir,
    recording_hashes,
    sha256_file,
)

__all__ = [
    "KILL_ENV",
    "crash_point",
    "BusyError",
    "DiskSpaceError",
    "IntegrityError",
    "OutputFolderError",
    "atomic_save_tensors",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_folder",
    "atomic_write_json",
    "atomic_write_text",
    "check_free_space",
    "check_output_folder",
    "folder_files",
    "folder_lock",
    "forget_set_commitment",
    "ids_digest",
    "is_temporary",
    "library_versions",
    "load_or_create_salt",
    "new_salt",
    "private_temp_dir",
    "read_manifest",
    "read_salt",
    "recording_hashes",
    "sha256_file",
    "staged_folder",
    "verify_commitment",
    "verify_files",
    "verify_folder",
    "write_manifest",
    "write_salt",
]
