"""The Dagster UI in a real browser: ``dagster-webserver`` on the repo's own workspace.yaml
(one code location per tenant) and headless Chromium (Debian's ``chromium``, driven by
playwright) on the asset graph. The screenshot it takes is the README's
(docs/images/dagster-asset-graph.png).

The browser is the system's /usr/bin/chromium, never one `playwright install` downloads:
.ci/run installs it, and without it this test fails rather than skips.

Also here: docs/orchestration.md's ``bash`` blocks run as written, in order, in a copy
of the project (its ``sh`` blocks start servers that never end, so they are not run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import dagster as dg
from playwright.sync_api import expect, sync_playwright

from tests.conftest import BIN, REPO
from tests.services.dagster_server import graphql, stop, wait_for_server
from tests.services.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SCREENSHOT = REPO / "docs" / "images" / "dagster-asset-graph.png"
DEMO_GROUPS = ("crm", "default", "shop")  # the demo tenant's contract domains
LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def test_the_asset_graph_shows_the_demo_assets(tmp_path: Path) -> None:
    assert CHROMIUM.is_file(), (f"{CHROMIUM} is missing: install Debian's chromium "
                                "(apt-get install chromium; .ci/run does)")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_bytes(
        (REPO / "orchestration" / "dagster_home" / "dagster.yaml").read_bytes())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(home), "DATIVO_MELTANO_PROJECT": str(REPO),
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONWARNINGS": "ignore"})
    log = tmp_path / "webserver.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        wait_for_server(f"{base}/server_info", server, log)
        # Both tenants' code locations of workspace.yaml load, neither with an error.
        entries = graphql(base, LOCATIONS)["workspaceOrError"]["locationEntries"]
        assert {e["name"]: e["locationOrLoadError"]["__typename"] for e in entries} == {
            "demo": "RepositoryLocation", "acme": "RepositoryLocation"}, entries

        # The global lineage page, narrowed to the demo location, its groups expanded and
        # laid out side by side (the UI keeps that choice in localStorage).
        selection = quote('code_location:"demo"')
        expanded = ",".join(f"global@global:{g}" for g in DEMO_GROUPS)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                # "Join the Dagster community" would cover the graph on a fresh instance.
                page.add_init_script(
                    "window.localStorage.setItem('communityNux', JSON.stringify('1'));"
                    "window.localStorage.setItem('asset-graph-direction',"
                    " JSON.stringify('vertical'));")
                page.goto(f"{base}/asset-groups~{selection}/?expanded={quote(expanded)}")
                for name in ("customers", "orders", "accounts"):
                    expect(page.get_by_text(name, exact=True)).to_have_count(
                        1, timeout=60_000)
                # acme's assets are not in the demo location's graph
                for name in ("charges", "contacts", "deals"):
                    expect(page.get_by_text(name, exact=True)).to_have_count(0)
                expect(page.get_by_text("Loading")).to_have_count(0, timeout=60_000)
                expect(page.get_by_text("Never materialized")).to_have_count(3)
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT))
            finally:
                browser.close()
    finally:
        stop(server)
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


DOC = REPO / "docs" / "orchestration.md"
FENCE = re.compile(r"^(`{3,})(\w*)\n(.*?)^\1$", re.MULTILINE | re.DOTALL)


def test_the_orchestration_guide_runs_as_written(tmp_path: Path) -> None:
    """The guide's ``bash`` blocks in a copy of the project: both code locations
    validate, the CLI materialization lands the demo rows and is a run of the instance
    in .dagster. Its ``sh`` blocks are exactly the ones that start servers."""
    blocks = [(m.group(2), m.group(3)) for m in FENCE.finditer(DOC.read_text("utf-8"))]
    servers = [body for language, body in blocks if language == "sh"]
    assert servers and all("make dagster" in b or "dagster dev" in b for b in servers)
    script = "".join(body for language, body in blocks if language == "bash")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("meltano.yml", "dativo-dagster.yml", "workspace.yaml"):
        shutil.copy(REPO / name, project)
    for folder in ("plugins", "samples", "odcs_contracts", "orchestration/dagster_home"):
        shutil.copytree(REPO / folder, project / folder)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MELTANO_", "DAGSTER_", "DATIVO_"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DISABLE_TRACKING": "true", "PYTHONWARNINGS": "ignore"})
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=project, env=env,
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "All code locations passed validation" in output
    assert "== demo.crm.customers: 6 rows ==" in result.stdout
    with dg.DagsterInstance.from_config(str(project / ".dagster")) as instance:
        runs = instance.get_runs()
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
        assert {k.to_user_string() for k in runs[0].asset_selection or ()} == {
            "demo/crm/customers", "demo/default/orders"}
