"""PLACEHOLDER, to be replaced by the workbench app of the web branch: just enough of
`create_app(settings)` to serve, mount and test the delivery around it (`tally web`, the
Airflow plugin, compose, the browser tests): /healthz, and a /login page that renders a form.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from tally.config import Settings

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")


def create_app(settings: Settings) -> FastAPI:
    # No API docs: the workbench is pages for people, and /docs would load Swagger from a CDN.
    app = FastAPI(title="Tally workbench", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> RedirectResponse:
        # url_for adds the prefix the app is mounted under (root_path): /tally/login in Airflow.
        return RedirectResponse(request.url_for("login"), status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login(request: Request):
        return templates.TemplateResponse(request, "login.html")

    return app
