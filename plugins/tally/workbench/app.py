"""The workbench's web application: pages for people, a JSON API for programs.

Pages sign in with a password and keep a signed session cookie (HTTP-only, SameSite=Lax);
every form posts its session's CSRF token, checked before anything else. The API under
/api/v1 takes `Authorization: Bearer <token>` only, never the cookie, so a page elsewhere
cannot make a browser call it. Every route asks `access` for the user's role on the server;
the templates escape everything they render (autoescape on, for every template).
"""

from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import jinja2
import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, StrictInt
from starlette.middleware.sessions import SessionMiddleware

from tally import money
from tally.config import Settings
from tally.services import postgres
from tally.workbench import (
    audit,
    cases,
    decisions,
    i18n,
    notifications,
    queue,
    users,
)
from tally.workbench import policy as policies
from tally.workbench.access import (
    LANGUAGES,
    ROLES,
    Invalid,
    NotFound,
    Refused,
    User,
    require,
)

HERE = Path(__file__).resolve().parent
SESSION_HOURS = 8  # a working day; the cookie is signed and expires with it


class SignIn(Exception):
    """No session: a page sends the browser to the login form."""


class Unauthenticated(Exception):
    """No valid bearer token: the API answers 401."""


# ---- request plumbing (FastAPI dependencies; each is evaluated once per request) -----------

def connection(request: Request):
    # One connection per request: the workbench is used by a finance team, not the public.
    with postgres.connect(request.app.state.settings, autocommit=True) as conn:
        yield conn


Conn = Annotated[psycopg.Connection, Depends(connection)]
_bearer = HTTPBearer(auto_error=False)


def csrf_token(request: Request) -> str:
    if "csrf" not in request.session:
        request.session["csrf"] = secrets.token_urlsafe(32)
    return request.session["csrf"]


async def form(request: Request) -> dict:
    """The posted form, once its CSRF token matches the session's."""
    data = await request.form()
    sent, expected = data.get("csrf") or "", request.session.get("csrf") or ""
    if not expected or not secrets.compare_digest(str(sent), expected):
        raise Refused("the form's CSRF token is missing or wrong; reload the page")
    return {k: v for k, v in data.items() if isinstance(v, str)}


def root_of(request: Request) -> str:
    """Where the app is mounted ('' standalone, '/tally' inside Airflow's API server)."""
    return request.scope.get("root_path", "").rstrip("/")


def local_path(request: Request) -> str:
    """The request's path within the app, whatever it is mounted under."""
    path, root = request.url.path, root_of(request)
    return path[len(root):] if root and path.startswith(root + "/") else path


def page_user(request: Request, conn: Conn) -> User:
    name = request.session.get("user")
    generation = request.session.get("generation")
    user = users.by_session(conn, name, generation) if name and generation is not None else None
    if user is None:
        request.session.pop("user", None)
        raise SignIn()
    return user


def api_user(request: Request, conn: Conn,
             credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
             ) -> User:
    user = users.by_token(conn, credentials.credentials) if credentials else None
    if user is None:
        audit.record(conn, "anonymous", "interface_call", "api_refused", None,
                     {"method": request.method, "path": request.url.path})
        raise Unauthenticated()
    audit.record(conn, user.name, "interface_call", "api_call", None,
                 {"method": request.method, "path": request.url.path})
    return user


Form = Annotated[dict, Depends(form)]
PageUser = Annotated[User, Depends(page_user)]
ApiUser = Annotated[User, Depends(api_user)]


def create_app(settings: Settings, policy: policies.Policy | None = None) -> FastAPI:
    if not settings.web.secret_key:
        raise RuntimeError("no session secret: run `tally services up` once, or set "
                           "TALLY_WEB_SECRET")
    policy = policy or policies.for_settings(settings)
    app = FastAPI(title="Tally workbench", version="1", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.add_middleware(SessionMiddleware, secret_key=settings.web.secret_key,
                       session_cookie="tally_workbench", max_age=SESSION_HOURS * 3600,
                       same_site="lax", https_only=False)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals.update(amount=i18n.amount, urlencode=urlencode, ROLES=ROLES,
                       ACTIONS=decisions.ACTIONS, SORTS=list(queue.SORTS),
                       STATUSES=queue.STATUSES, LANGUAGES=LANGUAGES)
    app.state.settings = settings

    def render(request: Request, template: str, user: User | None, conn, status: int = 200,
               **context) -> HTMLResponse:
        language = user.language if user else request.session.get("language", "zh")
        html = env.get_template(template).render(
            request=request, root=root_of(request), user=user, t=i18n.translator(language),
            language=language,
            csrf=csrf_token(request),
            unread=notifications.unread(conn, user.name) if user else 0, **context)
        return HTMLResponse(html, status_code=status)

    def back(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    # Under Airflow's API server the app is mounted at /tally (root_path): the pages link with
    # {{ root }}, and every redirect to one of the app's own paths is made relative to it here.
    @app.middleware("http")
    async def _under_root(request: Request, call_next):
        response = await call_next(request)
        root, location = root_of(request), response.headers.get("location", "")
        if root and location.startswith("/") and not location.startswith(root + "/"):
            response.headers["location"] = root + location
        return response

    # ---- errors ---------------------------------------------------------------------------

    def _error(request: Request, status: int, key: str, message: str):
        if local_path(request).startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        t = i18n.translator(request.scope.get("session", {}).get("language", "zh"))
        # autoescaped: the message may quote what the user typed
        html = env.from_string(
            "<!doctype html><meta charset=utf-8><title>{{ title }}</title>"
            "<h1>{{ title }}</h1><p>{{ message }}</p><p><a href='{{ root }}/queue'>{{ home }}</a>"
            "</p>"
        ).render(title=t(key), message=message, home=t("queue"), root=root_of(request))
        return HTMLResponse(html, status_code=status)

    @app.exception_handler(SignIn)
    async def _sign_in(request: Request, exc: SignIn):
        return back("/login")

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(request: Request, exc: Unauthenticated):
        return JSONResponse({"error": "a valid bearer token is required"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused):
        return _error(request, 403, "refused", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return _error(request, 404, "not_found", str(exc))

    @app.exception_handler(Invalid)
    async def _invalid(request: Request, exc: Invalid):
        return _error(request, 400, "error", str(exc))

    @app.exception_handler(psycopg.errors.IntegrityError)
    async def _integrity(request: Request, exc: psycopg.errors.IntegrityError):
        # The database's own guard (maker-checker, one waiting proposal) said no.
        return _error(request, 409, "refused", exc.diag.message_primary or "refused")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        try:
            with postgres.connect(settings, autocommit=True) as conn:
                # the type only: a message may quote data or a credential
                audit.record(conn, "system", "system_exception", "unhandled_error", None,
                             {"path": request.url.path, "method": request.method,
                              "error": type(exc).__name__})
        except psycopg.Error:
            pass
        return _error(request, 500, "error", "unexpected error; it was recorded")

    # ---- pages ----------------------------------------------------------------------------

    @app.get("/healthz", include_in_schema=False)
    def healthz(conn: Conn):
        conn.execute("select 1")
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def home():
        return back("/queue")

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, conn: Conn):
        return render(request, "login.html", None, conn, failed=False)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, data: Form, conn: Conn):
        user = users.authenticate(conn, data.get("name", ""), data.get("password", ""))
        if user is None:
            return render(request, "login.html", None, conn, status=401, failed=True)
        # A new session at sign-in: nothing chosen before it (a fixed cookie) carries over.
        request.session.clear()
        request.session.update(user=user.name, language=user.language,
                               generation=users.session_generation(conn, user.name),
                               csrf=secrets.token_urlsafe(32))
        return back("/queue")

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, data: Form, user: PageUser, conn: Conn):
        users.logout(conn, user.name)
        request.session.clear()
        return back("/login")

    @app.post("/language", include_in_schema=False)
    def language(request: Request, data: Form, user: PageUser, conn: Conn):
        chosen = "en" if user.language == "zh" else "zh"
        users.update(conn, user.name, user.name, language=chosen)
        request.session["language"] = chosen
        # back to the page the switch was pressed on, only if it is one of the app's own
        wanted = str(data.get("next", ""))
        inside = wanted.startswith("/") and not wanted.startswith("//") and "\\" not in wanted
        return back(wanted if inside else "/queue")

    @app.get("/queue", include_in_schema=False)
    def queue_page(request: Request, user: PageUser, conn: Conn):
        require(user, "view")
        f = queue.QueueFilter.from_query(request.query_params)
        result = queue.page(conn, policy, f)
        query = {k: v for k, v in request.query_params.items() if k != "page" and v}
        return render(request, "queue.html", user, conn, f=f, result=result, query=query,
                      projects=queue.projects(conn))

    @app.get("/cases/{case_key}", include_in_schema=False)
    def case_page(request: Request, case_key: str, user: PageUser, conn: Conn):
        require(user, "view")
        found = queue.detail(conn, policy, case_key, user.name)
        workers = [u for u in users.listing(conn) if u["active"] and u["role"] != "viewer"]
        return render(request, "case.html", user, conn, d=found, workers=workers)

    @app.post("/cases/{case_key}/propose", include_in_schema=False)
    def propose_page(case_key: str, data: Form, user: PageUser, conn: Conn):
        require(user, "propose")
        queue.ensure_case(conn, policy, case_key)
        decisions.propose(conn, policy, user, case_key, _proposal_from_form(data))
        return back(f"/cases/{case_key}")

    @app.post("/cases/{case_key}/comment", include_in_schema=False)
    def comment_page(case_key: str, data: Form, user: PageUser, conn: Conn):
        require(user, "work")
        queue.ensure_case(conn, policy, case_key)
        cases.comment(conn, user, case_key, data.get("body", ""))
        return back(f"/cases/{case_key}")

    @app.post("/cases/{case_key}/assign", include_in_schema=False)
    def assign_page(case_key: str, data: Form, user: PageUser, conn: Conn):
        require(user, "work")
        queue.ensure_case(conn, policy, case_key)
        cases.assign(conn, user, case_key, data.get("assignee") or None)
        return back(f"/cases/{case_key}")

    @app.get("/approvals", include_in_schema=False)
    def approvals_page(request: Request, user: PageUser, conn: Conn):
        require(user, "approve")
        return render(request, "approvals.html", user, conn,
                      proposals=decisions.waiting_for(conn, user))

    @app.post("/proposals/{proposal_id}/approve", include_in_schema=False)
    def approve_page(proposal_id: int, data: Form, user: PageUser, conn: Conn):
        decisions.approve(conn, user, proposal_id, data.get("reason"))
        return back("/approvals")

    @app.post("/proposals/{proposal_id}/reject", include_in_schema=False)
    def reject_page(proposal_id: int, data: Form, user: PageUser, conn: Conn):
        decisions.reject(conn, user, proposal_id, data.get("reason", ""))
        return back("/approvals")

    @app.get("/inbox", include_in_schema=False)
    def inbox_page(request: Request, user: PageUser, conn: Conn):
        require(user, "view")
        return render(request, "inbox.html", user, conn,
                      items=notifications.inbox(conn, user.name))

    @app.post("/inbox/read", include_in_schema=False)
    def inbox_read(data: Form, user: PageUser, conn: Conn):
        notifications.mark_read(conn, user.name)
        return back("/inbox")

    @app.get("/users", include_in_schema=False)
    def users_page(request: Request, user: PageUser, conn: Conn):
        require(user, "admin")
        return render(request, "users.html", user, conn, people=users.listing(conn),
                      created=None)

    @app.post("/users", include_in_schema=False)
    def add_user(request: Request, data: Form, user: PageUser, conn: Conn):
        require(user, "admin")
        name = data.get("name", "").strip()
        password = users.add(conn, name, data.get("role", ""), data.get("language", "zh"),
                             data.get("display_name") or None, actor=user.name)
        # shown once, on this response only; never stored or logged
        return render(request, "users.html", user, conn, people=users.listing(conn),
                      created={"name": name, "password": password})

    @app.post("/users/{name}", include_in_schema=False)
    def change_user(name: str, data: Form, user: PageUser, conn: Conn):
        require(user, "admin")
        users.update(conn, name, user.name, role=data.get("role") or None,
                     active=data.get("active") == "on", unlock=data.get("unlock") == "on")
        return back("/users")

    # ---- JSON API -------------------------------------------------------------------------

    @app.get("/api/v1/me", tags=["user"])
    def api_me(user: ApiUser):
        return {"name": user.name, "display_name": user.display_name, "role": user.role,
                "language": user.language}

    @app.get("/api/v1/queue", tags=["queue"])
    def api_queue(request: Request, user: ApiUser, conn: Conn):
        """The queue; query parameters as QueueFilter (date_from, date_to, project,
        item_type, min_amount_minor, max_amount_minor, min_age, max_age, status, assignee,
        sort, page, page_size)."""
        require(user, "view")
        return queue.page(conn, policy, queue.QueueFilter.from_query(request.query_params))

    @app.get("/api/v1/cases/{case_key}", tags=["cases"])
    def api_case(case_key: str, user: ApiUser, conn: Conn):
        require(user, "view")
        return queue.detail(conn, policy, case_key, user.name)

    @app.post("/api/v1/cases/{case_key}/proposals", tags=["decisions"], status_code=201)
    def api_propose(case_key: str, body: ProposalIn, user: ApiUser, conn: Conn):
        require(user, "propose")
        queue.ensure_case(conn, policy, case_key)
        proposal_id = decisions.propose(conn, policy, user, case_key,
                                        decisions.Proposal(**body.model_dump()))
        return decisions.get(conn, proposal_id)

    @app.post("/api/v1/cases/{case_key}/assign", tags=["cases"])
    def api_assign(case_key: str, body: AssignIn, user: ApiUser, conn: Conn):
        require(user, "work")
        queue.ensure_case(conn, policy, case_key)
        cases.assign(conn, user, case_key, body.assignee)
        return cases.get(conn, case_key)

    @app.post("/api/v1/cases/{case_key}/comments", tags=["cases"], status_code=201)
    def api_comment(case_key: str, body: CommentIn, user: ApiUser, conn: Conn):
        require(user, "work")
        queue.ensure_case(conn, policy, case_key)
        return {"comment_id": cases.comment(conn, user, case_key, body.body)}

    @app.get("/api/v1/approvals", tags=["decisions"])
    def api_approvals(user: ApiUser, conn: Conn):
        return decisions.waiting_for(conn, user)

    @app.post("/api/v1/proposals/{proposal_id}/approve", tags=["decisions"])
    def api_approve(proposal_id: int, body: DecisionIn, user: ApiUser, conn: Conn):
        status = decisions.approve(conn, user, proposal_id, body.reason)
        return {"proposal_id": proposal_id, "status": status}

    @app.post("/api/v1/proposals/{proposal_id}/reject", tags=["decisions"])
    def api_reject(proposal_id: int, body: DecisionIn, user: ApiUser, conn: Conn):
        decisions.reject(conn, user, proposal_id, body.reason or "")
        return {"proposal_id": proposal_id, "status": "rejected"}

    @app.get("/api/v1/inbox", tags=["inbox"])
    def api_inbox(user: ApiUser, conn: Conn):
        return {"unread": notifications.unread(conn, user.name),
                "items": notifications.inbox(conn, user.name)}

    @app.post("/api/v1/inbox/read", tags=["inbox"])
    def api_inbox_read(body: ReadIn, user: ApiUser, conn: Conn):
        return {"marked": notifications.mark_read(conn, user.name, body.ids)}

    return app


def _proposal_from_form(data: dict) -> decisions.Proposal:
    """A page's proposal form to a Proposal: the amount typed as a decimal ("1,234.50") is
    converted exactly to minor units of its currency, never through a float."""
    currency = (data.get("currency") or "").strip().upper() or None
    amount_text = (data.get("amount") or "").strip()
    amount_minor = None
    if amount_text:
        try:
            amount_minor = money.to_minor(amount_text, currency or "CNY")
        except money.AmountError as exc:
            raise Invalid(str(exc)) from None
        currency = currency or "CNY"
    clearing = (data.get("expected_clearing_date") or "").strip()
    try:
        clearing_date = date.fromisoformat(clearing) if clearing else None
    except ValueError:
        raise Invalid(f"not a date: {clearing!r}") from None
    return decisions.Proposal(
        action=data.get("action", ""), reason=data.get("reason", ""),
        left_keys=_keys(data.get("left_keys")), right_keys=_keys(data.get("right_keys")),
        amount_minor=amount_minor, currency=currency,
        account=(data.get("account") or "").strip() or None,
        expected_clearing_date=clearing_date)


def _keys(text: str | None) -> list[str]:
    return [k.strip() for k in (text or "").replace("\n", ",").split(",") if k.strip()]


class ProposalIn(BaseModel):
    action: str = Field(description="one of " + ", ".join(decisions.ACTIONS))
    reason: str = Field(min_length=1)
    left_keys: list[str] = []
    right_keys: list[str] = []
    amount_minor: StrictInt | None = Field(None, description="integer minor units; no floats")
    currency: str | None = None
    account: str | None = None
    expected_clearing_date: date | None = None


class AssignIn(BaseModel):
    assignee: str | None = None


class CommentIn(BaseModel):
    body: str = Field(min_length=1)


class DecisionIn(BaseModel):
    reason: str | None = None


class ReadIn(BaseModel):
    ids: list[int] | None = None
