"""The workbench inside Airflow: Airflow's own plugins manager loads
plugins/tally_workbench_plugin.py, and Airflow's own API server app serves the workbench under
/tally, the prefix included in its links."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tally import airflow_local, config

ROOT = config.load().project_dir

# Run in a fresh interpreter: the plugins manager caches what it loaded for the process's life,
# and the environment must be Airflow's before it is imported.
PROBE = textwrap.dedent("""
    import json
    import sys
    from airflow import plugins_manager
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    info = plugins_manager.get_plugin_info()
    apps, _ = plugins_manager.get_fastapi_plugins()
    client = TestClient(create_app(apps="core"))
    health = client.get("/tally/healthz")
    login = client.get("/tally/login")
    home = client.get("/tally/", follow_redirects=False)
    print(json.dumps({
        "errors": plugins_manager.get_import_errors(),
        "files": sorted(m.__file__ for n, m in sys.modules.items()
                        if n == "tally" or n.endswith("tally_workbench_plugin")),
        "plugins": [{"name": p["name"], "source": str(p["source"]),
                     "fastapi_apps": p["fastapi_apps"], "external_views": p["external_views"]}
                    for p in info],
        "apps": [[a["url_prefix"], a["name"], type(a["app"]).__module__] for a in apps],
        "health": [health.status_code, health.json()],
        "login": [login.status_code, login.text],
        "home": [home.status_code, home.headers.get("location")],
    }))
""")


def test_airflow_loads_the_workbench_plugin_and_serves_it_under_tally():
    env = airflow_local.environment(config.load())
    env["PYTHONPATH"] = str(ROOT / "plugins")
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    (plugin,) = [p for p in found["plugins"] if p["name"] == "tally_workbench"]
    assert plugin["source"] == "$PLUGINS_FOLDER/tally_workbench_plugin.py"
    assert found["files"] == sorted([str(ROOT / "plugins" / "tally_workbench_plugin.py"),
                                     str(ROOT / "plugins" / "tally" / "__init__.py")])
    assert plugin["fastapi_apps"] == [
        {"app": "fastapi.applications.FastAPI", "url_prefix": "/tally", "name": "Tally workbench"}]
    # What the API server mounts (other plugins, Cosmos's, may add theirs): ours once at /tally.
    assert [a for a in found["apps"] if a[0] == "/tally"] == [
        ["/tally", "Tally workbench", "fastapi.applications"]]
    (view,) = plugin["external_views"]
    assert view["name"] == "Tally workbench" and view["href"] == "/tally/"
    assert view["destination"] == "nav"
    # Mounted in Airflow's API server, before its UI's catch-all route.
    assert found["health"] == [200, {"status": "ok"}]
    status, page = found["login"]
    assert status == 200 and "<form" in page
    # Every link the page makes stays inside the workbench's prefix.
    links = [link.split('"')[1] for link in page.split("src=")[1:] + page.split("action=")[1:]]
    assert links and all("/tally/" in link for link in links), links
    assert found["home"][0] in (302, 303, 307) and "/tally/" in found["home"][1]

