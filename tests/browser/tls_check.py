"""tls_check.py - `popsync ui` over TLS (what --listen on another address
does; the test build forces it on loopback with POPSYNC_UI_TLS=1): the
handshake presents exactly the cache's certificate, the token becomes a
Secure cookie, and plain HTTP on the TLS port gets no page.  (The
certificate is not verified as a server's here: this cache's is issued
without --ui-address, for client authentication only; t_ui_tls verifies
one issued for serving, with curl and Chromium; docs/security.md §10.)
usage: tls_check.py URL CERT_FILE"""
import http.client
import ssl
import sys
import urllib.parse

from uitest import fail, ok

url, cert = sys.argv[1], sys.argv[2]
u = urllib.parse.urlsplit(url)
if u.scheme != "https":
    fail("not an https address: " + url)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection(u.hostname, u.port, timeout=10, context=ctx)
c.request("GET", u.path + "?" + u.query, headers={"Host": u.netloc})
with open(cert) as f:
    want = ssl.PEM_cert_to_DER_cert(f.read())
if c.sock.getpeercert(binary_form=True) != want:
    fail("the TLS certificate is not the cache's")
r = c.getresponse()
r.read()
cookie = r.getheader("Set-Cookie") or ""
if r.status != 303 or "Secure" not in cookie or "HttpOnly" not in cookie:
    fail("TLS token exchange: %d %r" % (r.status, cookie))
c.close()
ok("served over TLS with the cache's own certificate; the cookie is Secure")
p = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
try:
    p.request("GET", "/api/session", headers={"Host": u.netloc})
    st = p.getresponse().status
    if st == 200:
        fail("plain HTTP answered on the TLS port")
except (http.client.HTTPException, OSError):
    pass
ok("plain HTTP gets nothing on the TLS port")
