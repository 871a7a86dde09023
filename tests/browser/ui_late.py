"""ui_late.py - pages whose server accepts and stays silent (t_ui_silent.sh):
the page says the district server did not answer in time and shows what
the cache holds; the next page answers at once, saying since when the
server has not answered, with 再试 Try again, which asks it again.
usage: ui_late.py URL SHOTS ARGS_JSON
  {"id": RECORD_ID, "wait": S}: the record page (its cached history stays)
  {"month": YYYY-MM, "wait": S}: the dashboard and the monthly report
Waits are bounded by WAIT_S + the page's wait."""
import json
import sys

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from uitest import WAIT_S, Browser, fail, ok

url, shots = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
late = "区县服务器未在 %d 秒内答复" % args["wait"]
held = "前本页不再询问"


def gone(el):
    """The page el was on has been replaced.  Chromium answers a node of
    the old document either as stale or, during the swap, with an
    inspector error that the node "does not belong to the document"
    (EC.staleness_of takes only the first and fails on the second)."""
    def cond(_):
        try:
            el.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
    return cond


def try_again(b, css, old):
    """Clicks 再试 Try again beside css: the page reloads and asks again."""
    b.click(css + " #server-retry")
    b.wait(gone(old), "the page to reload after Try again")
    return b.wait_text(css, late, timeout=WAIT_S + args["wait"])


b = Browser(url, shots)
try:
    if "id" in args:
        b.go("/record.html?id=" + args["id"])
        note = b.wait_text("#versions-offline", late, timeout=WAIT_S + args["wait"])
        if "本机只保存最新版本" not in note.text:
            fail("the note does not say what the cache holds: " + note.text)
        if not b.find("#history table").text.strip():
            fail("late: the cache's history table is missing")
        b.d.execute_script("document.getElementById('history').scrollIntoView()")
        b.shot("person-versions-late")
        ok("the record page: " + note.text[:40])
        b.go("/record.html?id=" + args["id"])
        note = b.wait_text("#versions-offline", held)
        if "区县服务器自" not in note.text or not b.find("#history table").text.strip():
            fail("held: " + note.text)
        b.shot("person-versions-held")
        ok("opened again, at once: " + note.text[:40])
        try_again(b, "#versions-offline", note)
        ok("Try again asked the server again")
    else:
        b.go("/district.html?month=" + args["month"])
        b.find("#indicators tbody tr")
        b.wait(lambda d: late in b.status_text(), "the dashboard's note", timeout=WAIT_S + args["wait"])
        if "本机缓存的统计" not in b.status_text():
            fail("the dashboard does not say the numbers are the cache's: %r" % b.status_text())
        b.shot("dashboard-late")
        ok("the dashboard: " + b.status_text()[:60])
        b.go("/district_report.html?month=" + args["month"])
        stamp = b.wait_text("#r-stamp", held)
        if "区县服务器自" not in stamp.text or "本机缓存的统计" not in stamp.text:
            fail("the report, held: " + stamp.text)
        b.shot("report-held")
        ok("the report, at once from the cache: " + stamp.text[:60])
        try_again(b, "#r-stamp", stamp)
        b.shot("report-late")
        ok("Try again: the printable report is stamped as the cache's, the server late")
    b.check_local_only()
finally:
    b.close()
