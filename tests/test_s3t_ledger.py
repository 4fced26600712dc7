"""The ledger's atomicity: SIGKILL in the middle of ``delete`` (between the request record and
the active-prefix update, inside the transaction) or right after its commit; on reopen the
ledger and the served state are both before or both after the request, never in between."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_s3t_"))

import pytest  # noqa: E402

datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

from hf_unlearn.data import load_sentiment_dataset  # noqa: E402
from hf_unlearn.models import TinyBertSpec, build_tiny_bert  # noqa: E402
from hf_unlearn.s3t import S3TConfig, S3TModel  # noqa: E402
from hf_unlearn.s3t.ledger import PAUSE_ENV, PAUSE_MARKER_ENV, PAUSE_SECONDS_ENV  # noqa: E402

CHILD = (
    "import sys; from hf_unlearn.s3t import S3TModel; "
    "S3TModel.from_pretrained(sys.argv[1]).delete([sys.argv[2]], retrain=False); print('finished')"
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("ledger")
    data = load_sentiment_dataset("synthetic", n_train=80, n_test=8, n_canaries=0, seed=1)
    spec = TinyBertSpec(
        vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_length=24
    )
    model, tok = build_tiny_bert(data["train"]["text"], spec=spec)
    config = S3TConfig(
        output_dir=str(root / "system"), num_shards=2, num_slices=2, budget=2, num_train_epochs=1, max_length=24
    )
    S3TModel.train(config, model, tok, data["train"])
    return root / "system"


def kill_during_delete(system_dir, example_id, point):
    marker = system_dir.parent / f"paused-{point}"
    env = {
        **os.environ,
        PAUSE_ENV: point,
        PAUSE_MARKER_ENV: str(marker),
        PAUSE_SECONDS_ENV: "3600",  # paused until killed (it is killed as soon as the marker shows)
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(system_dir), example_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        while not marker.exists():  # no deadline: a child that ends without pausing fails the assert
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("point", ["in_transaction", "after_commit"])
def test_sigkill_mid_delete_leaves_before_or_after(pristine, tmp_path, point):
    S3TModel.from_pretrained(pristine).save_pretrained(tmp_path / "copy")
    system = S3TModel.from_pretrained(tmp_path / "copy")
    before = system.ledger.read_state()
    x = next(i for i in system.assignment.ids if system.assignment.locate(i) == (0, 0))
    expected_after = system.plan_deletion([x]).new_state
    cut_file = tmp_path / "copy" / system.state.keys(0, 0, [0])[0].relpath
    system.ledger.close()

    kill_during_delete(tmp_path / "copy", x, point)

    reopened = S3TModel.from_pretrained(tmp_path / "copy")
    state, deleted, requests = reopened.ledger.read_state(), reopened.ledger.deleted(), reopened.requests()
    assert reopened.ledger.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    served_json = json.loads((tmp_path / "copy" / "active_prefixes.json").read_text())["state"]
    assert served_json == state.to_dict()  # the exported copy agrees with the ledger after reopening
    if point == "in_transaction":
        assert state == before and deleted == {} and requests == []
        assert cut_file.exists()
    else:
        assert state == expected_after and deleted == {x: 1} and len(requests) == 1
        assert not cut_file.exists()  # the cut checkpoint's file is removed on reopen
        assert reopened.audit([x])["all_clean"]
        report = json.loads((tmp_path / "copy" / "report.json").read_text())
        assert report["forget"]["count"] == 1
    # the request can be (re)served after the crash, exactly once
    result = reopened.delete([x], retrain=False)
    assert result.replayed == (point == "after_commit")
    assert reopened.ledger.read_state() == expected_after
