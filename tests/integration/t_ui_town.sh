# popsync ui in a real browser (issue 18, township half): a real popsyncd,
# real caches, `popsync ui`, and headless chromium driven by selenium
# (tests/browser/town.py).  Screenshots go to BUILD/ui-shots/town/.
# Skipped (77) without chromium, chromium-driver or python3-selenium.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ui.sh"
ui_need_browser
make_pki
start_server
client t1 town1
client t2 town1

ui_start t1
ui_browser town.py town "{}"
ui_stop
pass "township pages in the browser"
