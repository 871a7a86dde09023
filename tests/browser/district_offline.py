"""district_offline.py - the dashboard and the monthly report with the
server stopped: the numbers come from the administrator's cache (its report
counters) and the page says so.  usage: district_offline.py URL SHOTS ARGS
(ARGS: month, report: the path of the online report's JSON)."""
import json
import sys

from uitest import Browser, fail, ok

url, shots = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
report = json.load(open(args["report"]))
b = Browser(url, shots)
try:
    b.go("/district.html?month=" + args["month"])
    b.find("#indicators tbody tr")
    if "无法连接服务器" not in b.status_text():
        fail("the dashboard does not say the server is unreachable: %r" % b.status_text())
    for r in report["rows"]:
        code = r["orgunit"] or "total"
        for k in ("persons_total", "births_total", "inflow", "outflow", "visits_total"):
            td = b.find("#indicators tr[data-code='%s'] td[data-key='%s']" % (code, k))
            if td.text != str(r[k]):
                fail("offline %s %s: %s, online %s" % (code, k, td.text, r[k]))
    n = b.d.execute_script(
        "const c = document.getElementById('chart-births'); const p = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
        "for (let i = 3; i < p.length; i += 4) if (p[i] !== 0) n++; return n;")
    if n < 500:
        fail("the births chart is blank offline")
    b.shot("dashboard-offline")
    ok("with the server stopped the dashboard shows the cache's counts, the same as the server's, and says so")
    b.go("/district_report.html?month=" + args["month"])
    b.wait_text("#r-stamp", "无法连接服务器")
    b.shot("report-offline")
    ok("the printable report is stamped as the cache's")
    b.check_local_only()
finally:
    b.close()
