"""town.py - a township clerk's month in the browser (issue 18 point 5,
township half).  usage: town.py URL SHOTS_DIR [scenario args as JSON]"""
import json
import sys

from uitest import Browser, fail, ok, security_checks

url, shots = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}

security_checks(url)
b = Browser(url, shots)
try:
    b.go("/")
    b.shot("search-empty")
    b.type("#q", "王")
    b.click("#search-go")
    b.wait_text("#status", "没有找到")
    ok("search page answers in Chinese")
    b.click("#lang-switch")
    b.wait_text("#search-go", "Search")
    b.click("#lang-switch")
    b.wait_text("#search-go", "查找")
    ok("language switch")
    b.check_local_only()
    ok("no resource from outside 127.0.0.1 (%d requests seen)" % len(b.seen))
finally:
    b.close()
