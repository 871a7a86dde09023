"""tls_browser.py - Chromium trusting the district CA (an NSS database in
$HOME/.pki/nssdb, as a district would install it) opens `popsync ui`
served over TLS beyond loopback with a cache certificate issued with
`popsync pki issue --ui-address` (issue 18, gap b): no certificate error
(an interstitial would never load the page shell), a secure context, and
the pages work.  usage: tls_browser.py URL SHOTS"""
import sys

from uitest import Browser, fail, ok

url, shots = sys.argv[1], sys.argv[2]
b = Browser(url, shots)  # times out on a certificate interstitial
try:
    if not b.d.execute_script("return window.isSecureContext && location.protocol === 'https:'"):
        fail("not a secure https context: " + b.d.current_url)
    b.go("/sync.html")
    b.wait(lambda d: d.find_elements("css selector", "#pending-count"), "the sync page over TLS")
    b.shot("tls-sync")
    ok("Chromium trusting the district CA accepts the cache's certificate at %s" % b.host)
finally:
    b.close()
