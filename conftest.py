"""Root conftest: pytest only honours ``pytest_plugins`` here (the Jupyter tests use these fixtures)."""

pytest_plugins = ["pytest_jupyter.jupyter_server"]
