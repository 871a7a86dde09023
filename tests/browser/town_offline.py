"""town_offline.py - a record's page while the server cannot be reached
(issue 18, gap a): the page says the versions are on the server and shows
what this cache holds (its history table).
usage: town_offline.py URL SHOTS ARGS_JSON  ({"id": RECORD_ID})"""
import json
import sys

from uitest import Browser, fail, ok

url, shots = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
b = Browser(url, shots)
try:
    b.go("/record.html?id=" + args["id"])
    note = b.wait_text("#versions-offline", "无法连接服务器", timeout=60)
    if not b.find("#history table").text.strip():
        fail("offline: the cache's history table is missing")
    if b.d.find_elements("css selector", "#versions-table"):
        fail("offline: a versions table was shown")
    b.d.execute_script("document.getElementById('history').scrollIntoView()")
    b.shot("person-versions-offline")
    ok("offline, the record page says so and shows what the cache holds: " + note.text[:40])
finally:
    b.close()
