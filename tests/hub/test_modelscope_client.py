"""The hub read with the real ModelScope client (``modelscope``, pinned in the lock) pointed
at a served stack: ``snapshot_download`` and one file, of a model and of a dataset; another
member's private repo is not found."""

from __future__ import annotations

import filecmp
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from huggingface_hub import HfApi

from ..stack import Stack


@pytest.fixture(autouse=True)
def _endpoint(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    from modelscope_hub.config import set_default_config

    monkeypatch.setenv("MODELSCOPE_ENDPOINT", stack.url)
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    set_default_config(None)  # (the client keeps its endpoint per process: this test's server)
    yield
    set_default_config(None)


def _publish(stack: Stack, tmp_path: Path, repo_type: str) -> Path:
    api = HfApi(endpoint=stack.url, token=stack.tokens["lab-user"])
    api.create_repo("lab/charlm", repo_type=repo_type, private=True)
    src = tmp_path / "src"
    (src / "weights").mkdir(parents=True)
    (src / "README.md").write_text("---\nlicense: apache-2.0\n---\n# charlm\n")
    (src / "config.json").write_text('{"context": 8}')
    (src / "weights" / "model.bin").write_bytes(os.urandom(2 << 20))
    api.upload_folder(folder_path=src, repo_id="lab/charlm", repo_type=repo_type)
    return src


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
def test_snapshot_download_with_the_modelscope_client(
    stack: Stack, tmp_path: Path, repo_type: str
) -> None:
    from modelscope import snapshot_download

    src = _publish(stack, tmp_path, repo_type)
    got = Path(
        snapshot_download(
            "lab/charlm",
            repo_type=repo_type,
            cache_dir=str(tmp_path / "cache"),
            token=stack.tokens["lab-user"],
        )
    )
    for name in ("README.md", "config.json", "weights/model.bin"):
        assert filecmp.cmp(src / name, got / name, shallow=False), name


def test_one_file_and_another_members_private_repo(stack: Stack, tmp_path: Path) -> None:
    from modelscope.hub.file_download import model_file_download

    src = _publish(stack, tmp_path, "model")
    got = model_file_download(
        "lab/charlm",
        "weights/model.bin",
        cache_dir=str(tmp_path / "one"),
        token=stack.tokens["lab-user"],
    )
    assert Path(got).read_bytes() == (src / "weights" / "model.bin").read_bytes()
    with pytest.raises(requests.HTTPError) as caught:
        model_file_download(
            "lab/charlm",
            "config.json",
            cache_dir=str(tmp_path / "two"),
            token=stack.tokens["corp-user"],
        )
    assert "[404] no model repo 'lab/charlm' (or you may not read it)" in str(caught.value)
