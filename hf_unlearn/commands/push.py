"""``hf-unlearn push RUN_DIR --repo-id user/name``: publish an unlearned model with its card.

The token is never taken on the command line (it would land in shell history and process
lists): it comes from ``--token-env VAR``, ``HF_TOKEN`` or the saved ``hf auth login``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hf-unlearn push",
        description="Publish an unlearned model (weights, tokenizer, forgetting card, report without "
        "per-example data, plots) to the Hugging Face Hub. Files are chosen by allow-list: forget ids, "
        "unlearning logs, checkpoints and optimizer state never leave the machine.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="output of `hf-unlearn unlearn` (holds report.json)")
    p.add_argument("--repo-id", help="target model repo, `user/name` or `org/name` (required unless --dry-run)")
    vis = p.add_mutually_exclusive_group()
    vis.add_argument(
        "--private",
        dest="private",
        action="store_true",
        default=True,
        help="create the repo as private (default; an existing repo keeps its visibility)",
    )
    vis.add_argument("--public", dest="private", action="store_false", help="create the repo as public")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="only build the upload folder and list it; nothing is sent, no token needed",
    )
    p.add_argument(
        "--token-env",
        metavar="VAR",
        help="name of the environment variable holding the token (default: HF_TOKEN, then the saved login)",
    )
    p.add_argument("--out", metavar="DIR", help="where to build the upload folder (default: RUN_DIR/hub_upload)")
    p.add_argument("--license", help="license id for the card, e.g. apache-2.0 (default: from the report)")
    p.add_argument("--commit-message", help="commit message on the Hub")
    return p


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _describe(folder) -> str:
    width = max(len(f) for f in folder.files)
    lines = [f"Upload folder: {folder.path}  ({len(folder.files)} files, {_size(folder.total_bytes)})"]
    lines += [f"  {f.ljust(width)}  {_size((folder.path / f).stat().st_size):>9}" for f in folder.files]
    if folder.left_behind:
        shown = ", ".join(folder.left_behind[:12]) + (" ..." if len(folder.left_behind) > 12 else "")
        lines.append(f"Not uploaded ({len(folder.left_behind)}): {shown}")
    if folder.stripped:
        lines.append(f"Removed from report.json ({len(folder.stripped)}): {', '.join(folder.stripped[:12])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from ..hub import PublishError, RunDirError, build_upload_folder, publish  # light: no torch

    def fail(message: str) -> int:
        print(f"hf-unlearn push: error: {message}", file=sys.stderr)
        return 1

    if not args.dry_run and not args.repo_id:
        return fail("--repo-id user/name is required (or use --dry-run)")
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            return fail(f"the environment variable {args.token_env} (--token-env) is not set or empty")
    try:
        if args.dry_run:
            folder = build_upload_folder(args.run_dir, args.out, repo_id=args.repo_id, license=args.license)
            print(_describe(folder))
            repo = args.repo_id or "user/name"
            print(
                f"Dry run: nothing was sent. To publish: hf-unlearn push {shlex.quote(args.run_dir)} --repo-id {repo}"
            )
            return 0
        result = publish(
            args.run_dir,
            args.repo_id,
            private=args.private,
            token=token,
            dest=args.out,
            license=args.license,
            commit_message=args.commit_message,
        )
    except (RunDirError, PublishError, ValueError) as e:
        return fail(str(e))
    print(_describe(result.folder))
    print(f"Published to {result.url} ({'private' if result.private else 'public'} if newly created)")
    if result.commit_url:
        print(f"Commit: {result.commit_url}")
    return 0
