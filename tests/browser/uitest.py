"""uitest.py - the browser test harness of popsync ui.

Drives Debian's headless chromium through chromium-driver with
python3-selenium.  Tests (town.py, and the district's) use:
  b = Browser(url_with_token, shots_dir)   # opens the UI, token -> cookie
  b.go('/page.html'); b.shot('name'); b.find('#css'); b.wait_text(...)
  b.check_local_only()                     # nothing loaded from elsewhere
  security_checks(url_with_token)          # token, Host, CSRF refusals
Every wait is bounded; nothing is fetched from outside 127.0.0.1 (the
browser runs with its background networking off and the check proves it).
"""
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 20


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    raise SystemExit(1)


def ok(msg):
    print("ok: " + msg, flush=True)


class Browser:
    def __init__(self, url, shots):
        u = urllib.parse.urlsplit(url)
        self.base = "%s://%s" % (u.scheme, u.netloc)
        self.host = u.netloc
        self.shots = shots
        os.makedirs(shots, exist_ok=True)
        self.profile = tempfile.mkdtemp(prefix="popsync-chromium-")
        o = webdriver.ChromeOptions()
        o.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--user-data-dir=" + self.profile, "--window-size=1280,900", "--no-first-run",
                  "--no-default-browser-check", "--disable-background-networking", "--disable-sync",
                  "--disable-component-update", "--disable-default-apps", "--disable-extensions",
                  "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                  "--no-proxy-server", "--lang=zh-CN", "--metrics-recording-only",
                  "--disable-features=Translate,OptimizationHints,MediaRouter"):
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        svc = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
        self.d = webdriver.Chrome(service=svc, options=o)
        self.d.set_page_load_timeout(WAIT_S)
        self.d.get(url)  # the token becomes the cookie, and we land on the clean URL
        if "token=" in self.d.current_url:
            fail("the token stayed in the address bar: " + self.d.current_url)
        self.wait(lambda d: d.execute_script("return typeof ps !== 'undefined' && ps.session !== null"), "page shell")
        self.seen = []

    def close(self):
        try:
            self.d.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def wait(self, cond, what, timeout=WAIT_S):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1).until(cond)
        except TimeoutException:
            self.shot("timeout")
            fail("timed out waiting for " + what + "; status: " + self.status_text())

    def status_text(self):
        try:
            return self.d.find_element(By.ID, "status").text
        except Exception:
            return "?"

    def go(self, path):
        self.d.get(self.base + path)
        self.wait(lambda d: d.execute_script("return typeof ps !== 'undefined' && ps.session !== null && !ps.loading"),
                  "page " + path)
        self.check_local_only()

    def find(self, css):
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css), css)

    def finds(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def wait_text(self, css, text, timeout=WAIT_S):
        def has(d):
            for e in d.find_elements(By.CSS_SELECTOR, css):
                if text in e.text:
                    return e
            return False
        return self.wait(has, "'%s' in %s" % (text, css), timeout)

    def type(self, css, text, clear=True):
        e = self.find(css)
        if clear:
            e.clear()
        e.send_keys(text)
        return e

    def click(self, css):
        e = self.find(css)
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", e)
        e.click()
        return e

    def shot(self, name):
        self.d.save_screenshot(os.path.join(self.shots, name + ".png"))

    def check_local_only(self):
        """Every resource the page loaded came from this server (resource
        timing plus the performance log of every request made)."""
        names = self.d.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])")
        for log in self.d.get_log("performance"):
            m = json.loads(log["message"])["message"]
            if m.get("method") == "Network.requestWillBeSent":
                names.append(m["params"]["request"]["url"])
        for n in names:
            u = urllib.parse.urlsplit(n)
            if u.scheme in ("data", "blob", "about", "chrome", "devtools"):
                continue
            # 127.0.0.1, or the one address `popsync ui --listen` serves on
            if u.hostname not in ("127.0.0.1", urllib.parse.urlsplit(self.base).hostname):
                fail("a page loaded %s from outside %s" % (n, self.base))
        self.seen.extend(names)


def raw_request(url, method="GET", path="/", host=None, headers=None, body=None):
    """One request with http.client (no cookies): (status, body)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    h = dict(headers or {})
    c.putrequest(method, path, skip_host=True)
    c.putheader("Host", host or u.netloc)
    for k, v in h.items():
        c.putheader(k, v)
    if body is not None:
        c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse()
    data = r.read()
    hdrs = dict((k.lower(), v) for k, v in r.getheaders())
    c.close()
    return r.status, data, hdrs


def security_checks(url):
    """The refusals of docs/security.md: no token, a foreign Host, a POST
    without the CSRF token; and the headers on every answer."""
    u = urllib.parse.urlsplit(url)
    token = urllib.parse.parse_qs(u.query)["token"][0]
    st, _, h = raw_request(url, path="/api/session")
    if st != 403:
        fail("a request without the token got %d" % st)
    for k, v in (("x-frame-options", "DENY"), ("x-content-type-options", "nosniff")):
        if h.get(k) != v:
            fail("header %s is %r" % (k, h.get(k)))
    csp = h.get("content-security-policy", "")
    if "default-src 'self'" not in csp or "unsafe-inline" in csp or "frame-ancestors 'none'" not in csp:
        fail("Content-Security-Policy: %r" % csp)
    ok("a request without the token is refused (403), with the security headers")
    st, _, _ = raw_request(url, path="/?token=" + "0" * len(token))
    if st != 403:
        fail("a wrong token got %d" % st)
    st, _, h = raw_request(url, path="/?token=" + token, host="evil.example:%d" % u.port)
    if st != 403 or "set-cookie" in h:
        fail("a foreign Host header got %d" % st)
    ok("a foreign Host header is refused even with the token (DNS rebinding)")
    st, _, h = raw_request(url, path="/?token=" + token)
    if st != 303 or "set-cookie" not in h:
        fail("the token was not exchanged for a cookie: %d" % st)
    cookie = h["set-cookie"]
    if "HttpOnly" not in cookie or "SameSite=Strict" not in cookie:
        fail("cookie attributes: " + cookie)
    if h.get("location") != "/":
        fail("not sent to the clean URL: %r" % h.get("location"))
    ok("the token becomes an HttpOnly SameSite=Strict cookie and the URL is cleaned")
    cv = cookie.split(";")[0]
    st, data, _ = raw_request(url, path="/api/session", headers={"Cookie": cv})
    if st != 200:
        fail("with the cookie: %d" % st)
    csrf = json.loads(data)["csrf"]
    st, _, _ = raw_request(url, method="POST", path="/api/lang", headers={"Cookie": cv, "Content-Type": "application/json"},
                           body=b"{}")
    if st != 403:
        fail("a POST without the CSRF token got %d" % st)
    st, _, _ = raw_request(url, method="POST", path="/api/lang",
                           headers={"Cookie": cv, "X-CSRF-Token": "x" * len(csrf), "Content-Type": "application/json"},
                           body=b"{}")
    if st != 403:
        fail("a POST with a wrong CSRF token got %d" % st)
    ok("a POST without (or with a wrong) CSRF token is refused")
    return cv, csrf
