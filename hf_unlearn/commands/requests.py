"""``hf-unlearn requests list RUN`` / ``requests show RUN REQUEST_ID [--show_ids]``: the deletion
requests recorded for a run (or an S3T / SISA system), read-only; the ids only with ``--show_ids``."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from . import fail

PROG = "hf-unlearn requests"
EXAMPLE = "hf-unlearn requests list runs/tiny\n  hf-unlearn requests show runs/tiny req-20250101T120000-a1b2c3"


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
    for parser in (listing, show):
        parser.add_argument("--verbose", action="store_true", help="accepted for symmetry with the other commands")
        parser.add_argument("--quiet", action="store_true", help="accepted for symmetry with the other commands")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ..console import result
    from ..runs.requests import NoLedgerError, find_request, read_requests, request_details, requests_table

    try:
        if args.action == "list":
            result(requests_table(read_requests(args.run)))
        else:
            result(request_details(find_request(args.run, args.request_id), show_ids=args.show_ids))
    except NoLedgerError as exc:
        result(str(exc))
        return 0
    except (FileNotFoundError, KeyError, sqlite3.Error) as exc:
        return fail(PROG, exc.args[0] if isinstance(exc, KeyError) else str(exc))
    return 0
