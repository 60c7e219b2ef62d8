"""The fakesnow server (``python -m tests.services.fakesnow_server PORT USERS``) with what
real Snowflake does at login and fakesnow leaves out, so the tap's errors can be tested:

- a login is checked: the user's password, or the JWT of key-pair auth against the
  user's public key (``USERS``: a JSON file ``{"user": {"password": ..., "public_key":
  PEM}}``); a refusal answers Snowflake's own code and message (390100, 390144);
- no database or schema is created at login (fakesnow's default creates them), so an
  unknown database fails as on Snowflake.

Everything else is fakesnow's server as it is: the real Snowflake connector talks to it
over HTTP, queries run on an in-memory DuckDB shared by every session.
"""

from __future__ import annotations

import gzip
import json
import sys
from typing import Any

import fakesnow.server as server
import jwt
import uvicorn
from fakesnow.instance import FakeSnow
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BAD_LOGIN = ("390100", "Incorrect username or password was specified.")
BAD_JWT = ("390144", "JWT token is invalid.")


def refused(code_message: tuple[str, str]) -> JSONResponse:
    code, message = code_message
    return JSONResponse({"data": {"nextAction": "RETRY_LOGIN", "authnMethod": "PASSWORD"},
                         "code": code, "message": message, "success": False})


def checked_login(users: dict[str, dict[str, str]]) -> Any:
    async def login(request: Request) -> JSONResponse:
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        data = json.loads(body)["data"]
        user = users.get(str(data.get("LOGIN_NAME", "")).lower())
        if user is None:
            return refused(BAD_LOGIN)
        if data.get("AUTHENTICATOR") == "SNOWFLAKE_JWT":
            try:
                jwt.decode(data.get("TOKEN", ""), user.get("public_key", ""),
                           algorithms=["RS256"])
            except (jwt.PyJWTError, ValueError):
                return refused(BAD_JWT)
        elif data.get("PASSWORD") != user.get("password"):
            return refused(BAD_LOGIN)
        return await server.login_request(request)

    return login


def main(port: int, users_file: str) -> None:
    with open(users_file) as f:
        users = {name.lower(): spec for name, spec in json.load(f).items()}
    server.shared_fs = FakeSnow(create_database_on_connect=False,
                                create_schema_on_connect=False)
    for index, route in enumerate(server.app.router.routes):
        if isinstance(route, Route) and route.path == "/session/v1/login-request":
            server.app.router.routes[index] = Route(route.path, checked_login(users),
                                                    methods=["POST"])
    uvicorn.run(server.app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
