"""Hub ids: a model argument may be `org/name[@revision]`, resolved through huggingface_hub's
cache as transformers and vLLM do. Tested offline on a cache laid out as the hub writes it
(blobs named by their hash, snapshots of links to them, refs naming the commit)."""

import hashlib
import os

import pytest

from engine.encoding import StepEncoder
from engine.format import ARITH_FORMAT
from engine.models import MODELS_DIR, ModelDirError, resolve_model
from engine.types import StepPath

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hub_cache(cache, repo_id: str, source, ref: str = "main"):
    """source's files as the hub cache holds a downloaded snapshot of repo_id; the snapshot dir."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in sorted(source.iterdir()):
        if file.is_file():
            data = file.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / ref).write_text(COMMIT)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path


def test_a_cached_hub_id_resolves_offline(offline_cache):
    snapshot = write_hub_cache(offline_cache, "ttc-search/arith-prm", MODELS_DIR / "prm")
    assert resolve_model("ttc-search/arith-prm") == snapshot
    assert resolve_model(f"ttc-search/arith-prm@{COMMIT}") == snapshot  # a commit
    write_hub_cache(offline_cache, "ttc-search/arith-policy", MODELS_DIR / "policy", ref="v1")
    assert resolve_model("ttc-search/arith-policy@v1").parent.name == "snapshots"  # a tag or branch
    enc = StepEncoder.load("ttc-search/arith-prm", ARITH_FORMAT, "PRM", labels=True)
    assert enc.path_ids("3+4", ["7"])[0] == StepEncoder.load(MODELS_DIR / "prm", ARITH_FORMAT, labels=True).path_ids("3+4", ["7"])[0]


def test_a_hub_id_scores_like_its_directory(offline_cache, hf_prm):
    from engine import HFPRM

    write_hub_cache(offline_cache, "ttc-search/arith-prm", MODELS_DIR / "prm")
    path = StepPath("12*3-7", ("36-7", "29"))
    assert HFPRM("ttc-search/arith-prm", ARITH_FORMAT).score([path]).scores == hf_prm.score([path]).scores


def test_a_missing_hub_id_is_a_clear_error(offline_cache):
    with pytest.raises(ModelDirError, match=r"policy 'ttc-search/missing' is not a local directory.*HF_HUB_OFFLINE.*hf download ttc-search/missing"):
        resolve_model("ttc-search/missing", "policy")
    with pytest.raises(ModelDirError, match=r"--revision v9"):
        write_hub_cache(offline_cache, "ttc-search/arith-prm", MODELS_DIR / "prm")
        resolve_model("ttc-search/arith-prm@v9")
    with pytest.raises(ModelDirError, match="directory not found"):
        resolve_model(offline_cache / "no-such-dir")  # a path, not an id: the directory error
