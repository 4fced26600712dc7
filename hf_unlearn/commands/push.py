"""``hf-unlearn push RUN_DIR --repo_id user/name``: publish an unlearned model with its card.

The token is never taken on the command line (it would land in shell history and process
lists): it comes from ``--token_env VAR``, ``HF_TOKEN`` or the saved ``hf auth login``.
Flags are snake_case with kebab-case aliases, like every command's; ``--out`` is the
deprecated name of ``--output_dir``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from ..runs.recipe import add_output_flags, rename_flags
from . import fail, start

PROG = "hf-unlearn push"
RENAMES = {"out": "output_dir"}
EXAMPLE = (
    "hf-unlearn push runs/tiny-forgot --dry_run\n  hf-unlearn push runs/tiny-forgot --repo_id you/tiny-unlearned\n"
    "  hf-unlearn push runs/lora-forgot --repo_id you/distilbert-imdb-lora-unlearned   # the adapter\n"
    "  hf-unlearn push runs/lora-forgot --merge_adapter --repo_id you/distilbert-imdb-unlearned"
)


def _flag(name: str) -> list[str]:
    """``--name`` and, for a name with underscores, its kebab-case alias."""
    return [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"example:\n  {EXAMPLE}\n\nDeprecated names, still accepted for one release: --out (now --output_dir).",
        description="Publish an unlearned model (weights, tokenizer, forgetting card, report without "
        "per-example data, plots) to the Hugging Face Hub. Files are chosen by allow-list: forget ids, "
        "unlearning logs, checkpoints and optimizer state never leave the machine.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="output of `hf-unlearn unlearn` (holds report.json)")
    p.add_argument(*_flag("repo_id"), help="target model repo, `user/name` or `org/name` (required unless --dry_run)")
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
        *_flag("dry_run"),
        action="store_true",
        help="only build the upload folder and list it; nothing is sent, no token needed",
    )
    p.add_argument(
        *_flag("token_env"),
        metavar="VAR",
        help="name of the environment variable holding the token (default: HF_TOKEN, then the saved login)",
    )
    p.add_argument(
        *_flag("output_dir"),
        metavar="DIR",
        help="where to build the upload folder (default: RUN_DIR-hub_upload, beside RUN_DIR)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --output_dir that is not a previous upload folder",
    )
    p.add_argument(
        *_flag("base_model"),
        metavar="REPO_ID",
        help="LoRA folder: the Hub repo of the adapter's base, for the card's base_model and adapter_config.json "
        "(default: the Hub id recorded at training; needed for a base without one, e.g. tiny-bert or a local folder)",
    )
    p.add_argument(
        *_flag("merge_adapter"),
        action="store_true",
        help="LoRA folder: upload the adapter merged into its base (config.json + model.safetensors, loads with "
        "AutoModelForSequenceClassification alone) instead of the adapter",
    )
    p.add_argument("--license", help="license id for the card, e.g. apache-2.0 (default: from the report)")
    p.add_argument(*_flag("commit_message"), help="commit message on the Hub")
    add_output_flags(p)
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
    parser = make_parser()
    parser.error = lambda message: parser.exit(2, f"{PROG}: error: {message}\n")  # one line, like every command
    args = parser.parse_args(rename_flags(sys.argv[1:] if argv is None else argv, RENAMES))
    start(args)
    from ..console import result
    from ..hub import LeakError, PublishError, RunDirError, build_upload_folder, publish  # light: no torch

    if not args.dry_run and not args.repo_id:
        return fail(PROG, "--repo_id user/name is required (or use --dry_run)")
    lora = {"base_model": args.base_model, "merge_adapter": args.merge_adapter}
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            return fail(PROG, f"the environment variable {args.token_env} (--token_env) is not set or empty")
    try:
        if args.dry_run:
            folder = build_upload_folder(
                args.run_dir,
                args.output_dir,
                repo_id=args.repo_id,
                license=args.license,
                overwrite=args.overwrite,
                **lora,
            )
            result(_describe(folder))
            repo = args.repo_id or "user/name"
            flags = (f" --base_model {args.base_model}" if args.base_model else "") + (
                " --merge_adapter" if args.merge_adapter else ""
            )
            result(
                f"Dry run: nothing was sent. To publish: hf-unlearn push {shlex.quote(args.run_dir)}{flags} --repo_id {repo}"
            )
            return 0
        published = publish(
            args.run_dir,
            args.repo_id,
            private=args.private,
            token=token,
            dest=args.output_dir,
            license=args.license,
            commit_message=args.commit_message,
            overwrite=args.overwrite,
            **lora,
        )
    except (RunDirError, PublishError, LeakError, ValueError) as e:
        return fail(PROG, str(e))
    result(_describe(published.folder))
    result(f"Published to {published.url} ({'private' if published.private else 'public'} if newly created)")
    if published.commit_url:
        result(f"Commit: {published.commit_url}")
    return 0
