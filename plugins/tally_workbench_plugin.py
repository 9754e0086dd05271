"""The Tally workbench inside Airflow 3's API server: mounted under /tally, with an entry
"Tally workbench" in the UI's navigation. The only Airflow plugin of the project; the tally
package itself never imports Airflow (plugins/.airflowignore keeps the plugin loader out of it).

Standalone, the same app is served by `tally web` at the root path; here it is a sub-application
at /tally, so the app (tally.workbench.app) must:

- never write an absolute path into a page, a redirect or a header: build every link, form
  action, redirect and static URL with `request.url_for(...)` (Jinja2: `url_for('static',
  path=...)`), which includes the mount prefix, or from `request.scope["root_path"]`, or keep it
  relative. `/login` would leave the workbench for Airflow's own /login; the prefixed form
  stays inside it. htmx attributes (hx-get, hx-post) follow the same rule;
- set its session cookie's path to the root path ("/tally" here, "/" standalone), so it is sent
  to the workbench only and never collides with Airflow's own cookies;
- do its own authentication: Airflow does not guard a plugin's FastAPI app. `GET /healthz` stays
  open (the compose healthcheck uses it), everything else needs a session;
- connect to nothing while `create_app` runs: every Airflow process may load this plugin (the
  scheduler, task processes), and the API server loads it at start. Open connections per request,
  or lazily;
- find its templates and static files next to its module (Path(__file__).parent / "templates",
  ".../static"), not from the working directory, which in Airflow is not the project.

Sessions are signed with settings.web.secret_key: give the API server TALLY_WEB_SECRET (compose
does, the same as the workbench service), or it is read from TALLY_HOME/secrets.json.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tally import config
from tally.workbench.app import create_app

URL_PREFIX = "/tally"


class TallyWorkbenchPlugin(AirflowPlugin):
    name = "tally_workbench"
    fastapi_apps = [
        {"app": create_app(config.load()), "url_prefix": URL_PREFIX, "name": "Tally workbench"},
    ]
    # A link in the navigation: the workbench opens as its own page, with its own login.
    external_views = [
        {"name": "Tally workbench", "href": f"{URL_PREFIX}/", "destination": "nav"},
    ]
