"""Signing out of the console over plain HTTP against real ``slm serve`` processes: a copy
of the cookie is refused by another node on the same PostgreSQL database, and by a node
restarted with the same secret key (SQLite: the one process, restarted)."""
from __future__ import annotations

import re

import pytest
import requests

from tests.support.serving import Server, slm

pytestmark = [pytest.mark.wallclock, pytest.mark.slow]

SECRET = ("--secret-key", "one key for every node", "--no-delivery")


def sign_in(server: Server, token: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(server.base + "/ui/login", timeout=30).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    answer = browser.post(server.base + "/ui/login", data={"token": token, "csrf": csrf},
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text
    return browser


def opens(server: Server, cookie: str) -> bool:
    """Whether a copy of the cookie opens the decision list on ``server``."""
    answer = requests.get(server.base + "/ui/decisions", cookies={"slm_session": cookie},
                          allow_redirects=False, timeout=30)
    assert answer.status_code in (200, 302), answer.status_code
    return answer.status_code == 200


def test_a_copied_cookie_stops_working_everywhere_once_signed_out(url, tmp_path):
    made = slm("token", "create", "--role", "auditor", "--db", url)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    postgres = url.startswith("postgresql")
    first = Server(url, tmp_path / "first.log", *SECRET).start()
    other = Server(url, tmp_path / "other.log", "--role", "api", *SECRET).start() if postgres else None
    try:
        browser = sign_in(first, token)
        cookie = browser.cookies.get("slm_session")
        assert opens(first, cookie) and (other is None or opens(other, cookie))
        page = browser.get(first.base + "/ui/decisions", timeout=30).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        assert browser.post(first.base + "/ui/logout", data={"csrf": csrf}, allow_redirects=False,
                            timeout=30).status_code == 302
        assert not opens(first, cookie)
        if other is not None:
            assert not opens(other, cookie)             # the other node, on the very next request
            other.stop()
            other.start()
            assert not opens(other, cookie)
        first.stop()
        first.start()
        assert not opens(first, cookie)
        assert opens(first, sign_in(first, token).cookies.get("slm_session"))
    finally:
        first.stop()
        if other is not None:
            other.stop()
