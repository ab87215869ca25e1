"""Execute every notebook in ``notebooks/`` with a real kernel; any error fails the test.

The kernel is the ``python3`` kernelspec pinned to this interpreter (a kernel.json written to a
temporary JUPYTER_PATH, which takes precedence over user and system kernelspecs), so the
venv's ipykernel and this checkout of gdbnb are what run. The kernel's cwd and GDB_DATA_DIR are
temporary folders: notebooks never write into the repository.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (gdbnb tests)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("GDB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TQDM_DISABLE", "0")
    work = tmp_path / "cwd"
    work.mkdir()
    return work


def _repo_files() -> set[str]:
    """Where a notebook could write by mistake (its folder, the repo root), ignored files included."""
    found = {str(p.relative_to(REPO)) for p in (REPO / "notebooks").rglob("*")}
    found |= {p.name for p in REPO.iterdir()}
    return found


def test_notebooks_are_committed_without_outputs() -> None:
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_env: Path) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    before = _repo_files()
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=90, startup_timeout=60,
                                     resources={"metadata": {"path": str(kernel_env)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert not list(kernel_env.iterdir()) or all(p.name.startswith(".") for p in kernel_env.iterdir())
    assert _repo_files() == before, "the notebook wrote into the repository"
