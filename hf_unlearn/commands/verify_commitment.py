"""``hf-unlearn verify-commitment``: check a published forget-set commitment with the ids and the salt.

The card and ``report.json`` of an unlearned model name the forget set by
``hmac-sha256:<hex>`` = HMAC-SHA256(key = the 32-byte salt, message = the distinct ids, sorted,
joined by ``"\\n"``, UTF-8) (:func:`hf_unlearn.artifacts.forget_set_commitment`). The salt stays
private, in the output folder of ``hf-unlearn unlearn`` (``commitment_salt.json``). Whoever holds
the ids AND the salt runs::

    hf-unlearn verify-commitment --ids FORGET_FILE --salt OUTPUT/commitment_salt.json \\
        (--report OUTPUT/report.json | --commitment hmac-sha256:...)

Exit status 0 and ``verified`` when the ids and salt give the commitment; 1 and ``does not match``
otherwise; 2 for bad input (a missing or unreadable file, a malformed salt or commitment, a report
without a commitment, an empty id file). The ids are never printed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from . import fail

PROG = "hf-unlearn verify-commitment"
MISMATCH = 1
EXAMPLE = (
    "hf-unlearn verify-commitment --ids forget.txt --salt runs/tiny-forgot/commitment_salt.json "
    "--report runs/tiny-forgot/report.json"
)
_COMMITMENT = re.compile(r"hmac-sha256:[0-9a-f]{64}")


class BadInput(ValueError):
    """An input of verify-commitment that cannot be used (exit status 2)."""


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check that a forget-set commitment (model card, report.json) is the commitment of these "
        "ids under this salt: HMAC-SHA256, key = the salt's bytes, message = the distinct ids sorted and joined "
        'by "\\n", UTF-8. Exit 0 "verified", 1 "does not match", 2 bad input. The ids are never printed.',
        epilog=f"example:\n  {EXAMPLE}",
    )
    p.add_argument("--ids", required=True, metavar="FORGET_FILE", help="the forget-id file (one id per line)")
    p.add_argument(
        "--salt", required=True, metavar="SALT_FILE", help="commitment_salt.json from the output folder of `unlearn`"
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--report", metavar="REPORT", help="report.json holding forget.commitment")
    which.add_argument("--commitment", metavar="VALUE", help="the published value, hmac-sha256:<64 hex digits>")
    p.add_argument("--verbose", action="store_true", help="accepted for symmetry with the other commands")
    p.add_argument("--quiet", action="store_true", help="print nothing: the exit status alone answers")
    return p


def published_commitment(report: str | None, commitment: str | None) -> str:
    """The commitment to check: ``--commitment`` as given, or ``forget.commitment`` of ``--report``."""
    if report is not None:
        path = Path(report)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInput(f"--report {path}: no such file") from None
        except (OSError, ValueError) as exc:
            raise BadInput(f"--report {path}: not a readable JSON report ({type(exc).__name__})") from None
        forget = data.get("forget") if isinstance(data, dict) else None
        commitment = forget.get("commitment") if isinstance(forget, dict) else None
        if commitment is None:
            old = isinstance(forget, dict) and "sha256" in forget
            raise BadInput(
                f"--report {path} holds no forget-set commitment"
                + (
                    " (a schema_version 1 report: it names the forget set by a plain sha256, not a salted commitment)"
                    if old
                    else " (no deletion recorded in it): pass --commitment VALUE from the model card"
                )
            )
        where = f"--report {path}: forget.commitment"
    else:
        where = "--commitment"
    value = str(commitment).strip()
    if not _COMMITMENT.fullmatch(value):
        raise BadInput(f"{where} is not of the form hmac-sha256:<64 lowercase hex digits>")
    return value


def read_inputs(args: argparse.Namespace) -> tuple[list[str], bytes]:
    """(the ids, the salt) from ``--ids`` and ``--salt``; :class:`BadInput` naming the file otherwise."""
    from ..artifacts import read_salt
    from ..data.forget import read_id_file

    salt_path = Path(args.salt)
    if not salt_path.is_file():
        raise BadInput(f"--salt {salt_path}: no such file (commitment_salt.json is in the output folder of `unlearn`)")
    try:
        salt = read_salt(salt_path)
    except (OSError, ValueError) as exc:
        raise BadInput(f"--salt {salt_path}: {exc}") from None
    if len(salt) < 16:
        raise BadInput(f"--salt {salt_path}: a salt has at least 16 bytes, this one {len(salt)}")
    try:
        ids = read_id_file(args.ids)
    except UnicodeDecodeError:
        raise BadInput(f"--ids {args.ids}: not UTF-8 text; save the id file as UTF-8") from None
    except (OSError, ValueError) as exc:  # ForgetRequestError is a ValueError
        raise BadInput(f"--ids {args.ids}: {exc}") from None
    if not ids:
        raise BadInput(f"--ids {args.ids}: no id in the file (one id per line)")
    return ids, salt


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ..artifacts import verify_commitment

    try:
        value = published_commitment(args.report, args.commitment)
        ids, salt = read_inputs(args)
    except BadInput as exc:
        return fail(PROG, str(exc))
    n = len(set(ids))
    if verify_commitment(ids, salt, value):
        if not args.quiet:
            print(f"verified: the {n} distinct ids of {args.ids} and the salt give {value}")
        return 0
    if not args.quiet:
        print(f"does not match: the {n} distinct ids of {args.ids} and the salt do not give {value}")
    return MISMATCH
