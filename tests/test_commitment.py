"""The forget-set commitment resists guessing, and deleted ids stay in the private folders.

- ``hf_unlearn.artifacts.forget_set_commitment`` (HMAC-SHA256 keyed with a private 32-byte salt) and
  ``hf-unlearn verify-commitment``: verified with the ids and the salt, refused with one id changed;
- ``unlearn --retrain_twin`` writes the salt (0600) into its OUTPUT folder only, never into the run
  folder it reads; report.json, the card (and its model-index) and the whole ``push --dry_run`` upload
  folder hold no id and no value computable from the ids alone;
- nothing ``unlearn`` or ``push`` prints names a deleted id; the retrain twin leaves nothing in the
  system temporary folder, also when it fails.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
import stat
import tempfile
from pathlib import Path

import pytest
from conftest import TINY_TRAIN_ARGS

from hf_unlearn import artifacts
from hf_unlearn.cli import main


def _forms(ids: list[str]) -> set[bytes]:
    """Every way a plain (unsalted) hash could have been fed the ids: sorted or as given, joined."""
    forms = set()
    for order in (sorted(set(ids)), list(ids)):
        for sep in ("\n", ",", " ", "", "\t", ";"):
            text = sep.join(order)
            forms |= {text.encode(), (text + "\n").encode(), json.dumps(order).encode()}
    return forms


def values_computable_from_ids(ids: list[str]) -> set[str]:
    """What a guesser holding candidate ids can compute without the salt (hex digests, any case)."""
    out = {artifacts.ids_digest(ids)}
    for form in _forms(ids):
        for name in ("sha256", "sha1", "md5", "sha512", "blake2b"):
            out.add(hashlib.new(name, form).hexdigest())
        for key in (b"", b"\0" * 32):  # an HMAC with a known (empty / zero) key is no secret either
            out.add(hmac.new(key, form, hashlib.sha256).hexdigest())
    return out | {v.upper() for v in out}


def assert_nothing_computable(files: list[Path], ids: list[str]) -> None:
    needles = values_computable_from_ids(ids)
    for path in files:
        data = path.read_bytes().decode("utf-8", errors="replace")
        found = [n for n in needles if n in data]
        assert not found, f"{path.name} holds a value computable from the ids alone"
        named = [i for i in ids if i in data]
        assert not named, f"{path.name} names {len(named)} forgotten id(s)"


# ----------------------------------------------------------------------------- the commitment itself


def test_three_ids_among_a_thousand_cannot_be_found_without_the_salt():
    known = [f"user-{k:04d}" for k in range(1000)]  # every candidate id is public
    forgotten = random.Random(0).sample(known, 3)
    salt = artifacts.new_salt()
    published = artifacts.forget_set_commitment(forgotten, salt)
    assert len(salt) == 32 and published.startswith("hmac-sha256:")
    assert artifacts.verify_commitment(forgotten, salt, published)
    # the guesser's attack (every plain hash of every joined form) misses even on the true subset,
    assert published.split(":", 1)[1] not in values_computable_from_ids(forgotten)
    # and so does every 3-subset of the first candidates: nothing to compare against without the salt
    tried = [artifacts.ids_digest(c) for c in itertools.islice(itertools.combinations(known, 3), 2000)]
    assert published.split(":", 1)[1] not in tried
    # the value depends on the 256-bit secret: any other salt gives another value for the same ids
    assert not any(artifacts.verify_commitment(forgotten, artifacts.new_salt(), published) for _ in range(200))
    flipped = bytes([salt[0] ^ 1]) + salt[1:]  # one bit of the salt changed
    assert not artifacts.verify_commitment(forgotten, flipped, published)
    changed = sorted(forgotten)[:2] + [next(i for i in known if i not in forgotten)]
    assert not artifacts.verify_commitment(changed, salt, published)


def test_the_card_recipe_recomputes_the_commitment(tmp_path):
    """HMAC-SHA256, key = salt bytes, message = sorted distinct ids joined by "\\n", UTF-8 (the card's words)."""
    salt = artifacts.load_or_create_salt(tmp_path)
    assert stat.S_IMODE((tmp_path / artifacts.COMMITMENT_SALT_FILE).stat().st_mode) == 0o600
    assert artifacts.load_or_create_salt(tmp_path) == salt  # created once, then read
    ids = ["b-2", "a-1", "ü-3", "b-2"]
    by_hand = hmac.new(salt, "a-1\nb-2\nü-3".encode(), hashlib.sha256).hexdigest()
    assert artifacts.forget_set_commitment(ids, salt) == f"hmac-sha256:{by_hand}"


def _verify(capsys, *args) -> tuple[int, str]:
    code = main(["verify-commitment", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_verify_commitment_command(tmp_path, capsys):
    ids = [f"synthetic-train-{k:05d}" for k in (3, 17, 42)]
    salt = artifacts.load_or_create_salt(tmp_path)
    value = artifacts.forget_set_commitment(ids, salt)
    (tmp_path / "report.json").write_text(json.dumps({"forget": {"count": 3, "commitment": value}}))
    good = tmp_path / "ids.txt"
    good.write_text("# the request\n" + "\n".join(reversed(ids)) + "\n\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(ids[:2] + ["synthetic-train-00043"]) + "\n")
    salt_file = tmp_path / artifacts.COMMITMENT_SALT_FILE

    code, out = _verify(capsys, "--ids", good, "--salt", salt_file, "--report", tmp_path / "report.json")
    assert code == 0 and out.startswith("verified") and not any(i in out for i in ids)
    code, out = _verify(capsys, "--ids", good, "--salt", salt_file, "--commitment", value)
    assert code == 0 and "verified" in out
    code, out = _verify(capsys, "--ids", bad, "--salt", salt_file, "--commitment", value)
    assert code == 1 and out.startswith("does not match") and not any(i in out for i in ids)
    other = tmp_path / "other"
    artifacts.load_or_create_salt(other)
    code, out = _verify(capsys, "--ids", good, "--salt", other / artifacts.COMMITMENT_SALT_FILE, "--commitment", value)
    assert code == 1  # the right ids with another salt do not verify
    # bad input: exit 2, one line naming the flag, no traceback
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"forget": {"count": 3, "sha256": artifacts.ids_digest(ids)}}))
    for args, named in [
        (("--ids", tmp_path / "missing.txt", "--salt", salt_file, "--commitment", value), "--ids"),
        (("--ids", good, "--salt", tmp_path / "missing.json", "--commitment", value), "--salt"),
        (("--ids", good, "--salt", tmp_path / "report.json", "--commitment", value), "--salt"),
        (("--ids", good, "--salt", salt_file, "--commitment", value[:-1]), "--commitment"),
        (("--ids", good, "--salt", salt_file, "--report", old), "schema_version 1"),
    ]:
        code, out = _verify(capsys, *args)
        assert code == 2 and named in out and "Traceback" not in out, out
        assert out.count("\n") == 1 and out.startswith("hf-unlearn verify-commitment: error:"), out


# ----------------------------------------------------------------------------- unlearn, report, card, push


@pytest.fixture(scope="module")
def unlearned(tmp_path_factory):
    """A tiny run, then ``unlearn --retrain_twin`` with a private system temporary folder: (paths, output)."""
    root = tmp_path_factory.mktemp("commitment")
    run, out, systemp = root / "run", root / "out", root / "systemp"
    systemp.mkdir()
    assert main(["train", *TINY_TRAIN_ARGS, "--output_dir", str(run), "--quiet"]) == 0
    from hf_unlearn.runs.unlearn import load_run

    train_ids = list(load_run(run).data["train"]["id"])
    ids = sorted(train_ids[1:9:2] + [i for i in train_ids if i.startswith("canary")][:1])
    forget = root / "forget_ids.txt"
    forget.write_text("\n".join(ids) + "\n")
    before_run = sorted(p.name for p in run.iterdir())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(systemp))
        code = main(
            ["unlearn", "--run", str(run), "--forget", str(forget), "--method", "amnesiac"]
            + ["--retrain_twin", "--output_dir", str(out)]
        )
        left = sorted(p.name for p in systemp.iterdir())
    assert code == 0
    return {"run": run, "out": out, "ids": ids, "forget": forget, "left": left, "before_run": before_run}


def test_unlearn_keeps_the_salt_in_its_output_only(unlearned, capsys):
    out, run, ids = unlearned["out"], unlearned["run"], unlearned["ids"]
    salt_file = out / artifacts.COMMITMENT_SALT_FILE
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    # the run's files are only read; what unlearn adds to the run folder is its private live state: the
    # request ledger, the lock and the run's own salt of the ledger's commitments (never the report's)
    live = {artifacts.REQUEST_LEDGER_FILE, artifacts.LOCK_FILE, artifacts.COMMITMENT_SALT_FILE}
    assert sorted(p.name for p in run.iterdir() if p.name not in live) == unlearned["before_run"]
    assert artifacts.read_salt(run / artifacts.COMMITMENT_SALT_FILE) != artifacts.read_salt(salt_file)
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 4 and "sha256" not in report["forget"]
    assert report["forget"]["count"] == len(ids)
    assert artifacts.verify_commitment(ids, artifacts.read_salt(salt_file), report["forget"]["commitment"])
    assert unlearned["left"] == []  # the twin's temporary folder is gone from the system temp folder
    code, text = _verify(capsys, "--ids", unlearned["forget"], "--salt", salt_file, "--report", out / "report.json")
    assert code == 0 and "verified" in text


def test_nothing_public_is_computable_from_the_ids(unlearned, tmp_path, capsys):
    out, ids = unlearned["out"], unlearned["ids"]
    capsys.readouterr()
    hub = tmp_path / "hub"
    assert main(["push", str(out), "--dry_run", "--output_dir", str(hub)]) == 0
    printed = capsys.readouterr()
    uploaded = sorted(p for p in hub.rglob("*") if p.is_file())
    names = {p.relative_to(hub).as_posix() for p in uploaded}
    assert {"README.md", "report.json"} <= names and artifacts.COMMITMENT_SALT_FILE not in names
    assert not any("salt" in n or "forget" in n for n in names)
    assert_nothing_computable(uploaded + [out / "report.json"], ids)
    card = (hub / "README.md").read_text()
    commitment = json.loads((out / "report.json").read_text())["forget"]["commitment"]
    assert commitment in card and "hf-unlearn verify-commitment --ids FORGET_FILE" in card
    assert "HMAC-SHA256" in card and "sha256sum" not in card
    assert not any(i in printed.out + printed.err for i in ids)


def test_unlearn_prints_no_forgotten_id(unlearned, tmp_path, capfd):
    """The whole console output of an unlearn (every phase line, the table) names no forgotten id."""
    capfd.readouterr()
    ids = unlearned["ids"]
    assert (
        main(
            [
                "unlearn",
                "--run",
                str(unlearned["run"]),
                "--forget",
                str(unlearned["forget"]),
                "--method",
                "neggrad",
                "--output_dir",
                str(tmp_path / "again"),
            ]
        )
        == 0
    )
    printed = capfd.readouterr()
    assert "wrote" in printed.out
    assert not any(i in printed.out + printed.err for i in ids)


def test_a_failing_twin_leaves_nothing_in_the_system_temp_folder(unlearned, tmp_path, monkeypatch):
    from hf_unlearn.data.forget import ForgetRequest
    from hf_unlearn.runs.unlearn import unlearn_run
    from hf_unlearn.training.trainer import UnlearnableTrainer

    systemp = tmp_path / "systemp"
    systemp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systemp))
    seen = []

    def boom(self, *args, **kwargs):
        seen.append(sorted(p.name for p in systemp.iterdir()))  # the twin's folder exists now
        raise RuntimeError("simulated failure inside the retrain twin")

    monkeypatch.setattr(UnlearnableTrainer, "training_step", boom)
    with pytest.raises(RuntimeError, match="simulated failure"):
        unlearn_run(unlearned["run"], ForgetRequest.from_ids(unlearned["ids"]), "amnesiac", tmp_path / "out")
    assert seen and seen[0], "the twin never reached training: the test did not exercise its temp folder"
    assert sorted(p.name for p in systemp.iterdir()) == []


def test_a_version_1_report_is_read_but_its_plain_hash_never_published():
    from hf_unlearn.cards import ForgettingReport, render_card

    ids = ["synthetic-train-00001", "synthetic-train-00002"]
    old = {"schema_version": 1, "method": "neggrad", "forget": {"count": 2, "sha256": artifacts.ids_digest(ids)}}
    assert ForgettingReport.from_dict(old).forget["sha256"] == artifacts.ids_digest(ids)  # still read
    card = str(render_card(old))
    assert artifacts.ids_digest(ids) not in card and "No forget-set commitment is published" in card
