"""``hf-unlearn requests list RUN`` / ``requests show RUN REQUEST_ID [--show_ids]``: the deletion
requests recorded for a run (or an S3T / SISA system), read-only; the ids only with ``--show_ids``.
``requests audit RUN [--model FOLDER ...]``: does each folder (default: RUN itself) honour every
request of RUN's ledger (exit 0 when all do, 1 when one does not)."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from ..artifacts import IntegrityError
from . import fail

PROG = "hf-unlearn requests"
EXAMPLE = (
    "hf-unlearn requests list runs/tiny\n  hf-unlearn requests show runs/tiny req-20250101T120000-a1b2c3\n"
    "  hf-unlearn requests audit runs/tiny --model runs/tiny-forgot runs/tiny-v2"
)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The deletion requests recorded for a training run (requests.sqlite) or an S3T / SISA system "
        "(ledger.sqlite), read-only. The ids of a request are never printed unless --show_ids.",
        epilog=f"examples:\n  {EXAMPLE}",
    )
    sub = p.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="one line per request: seq, id, created, status, method, n_ids, output")
    listing.add_argument("run", metavar="RUN", help="the run folder (or S3T / SISA system folder)")
    show = sub.add_parser("show", help="one request in full (its ids only with --show_ids)")
    show.add_argument("run", metavar="RUN", help="the run folder (or S3T / SISA system folder)")
    show.add_argument("request_id", metavar="REQUEST_ID")
    show.add_argument("--show_ids", "--show-ids", action="store_true", help="also print the request's ids")
    audit = sub.add_parser(
        "audit", help="does each --model folder (default: RUN) honour every request of RUN's ledger"
    )
    audit.add_argument("run", metavar="RUN", help="the run folder whose ledger is audited")
    audit.add_argument(
        "--model",
        nargs="+",
        default=None,
        metavar="FOLDER",
        help="runs (trained without the ids: their transcript) or unlearn outputs (served: the ledger's record)",
    )
    for parser in (listing, show, audit):
        parser.add_argument("--verbose", action="store_true", help="accepted for symmetry with the other commands")
        parser.add_argument("--quiet", action="store_true", help="accepted for symmetry with the other commands")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ..console import result
    from ..runs.requests import NoLedgerError, find_request, read_requests, request_details, requests_table

    try:
        if args.action == "audit":
            return audit(args.run, args.model or [args.run])
        if args.action == "list":
            result(requests_table(read_requests(args.run)))
        else:
            result(request_details(find_request(args.run, args.request_id), show_ids=args.show_ids))
    except NoLedgerError as exc:
        result(str(exc))
        return 0
    except (FileNotFoundError, KeyError, sqlite3.Error, IntegrityError) as exc:
        return fail(PROG, exc.args[0] if isinstance(exc, KeyError) else str(exc))
    return 0


def audit(run: str, folders: list[str]) -> int:
    """One line per folder; 0 when every folder honours every request, else 1."""
    from ..console import result
    from ..runs.audit import audit_folder

    findings = [audit_folder(run, folder) for folder in folders]
    result("\n".join(f.line() for f in findings))
    return 0 if all(f.honours for f in findings) else 1
