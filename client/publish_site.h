/* publish_site.h - writes the files of the public statistics site
 * (publish.h has the tables; docs/publish.md describes the site).
 *
 * Owns: index.html, site.css, site.js, data.js, indicators.csv, trend.csv
 * and the copy of Chart.js, all under one directory, mode 0644 (public
 * aggregate numbers), each written to a temporary name and renamed, so a
 * web server never serves half a file.  Called by ps_cmd_publish only.
 */
#ifndef PS_PUBLISH_SITE_H
#define PS_PUBLISH_SITE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "publish.h"

/** Debian's libjs-chart.js (scripts/install-deps.sh): the UMD build. */
#define PS_CHARTJS_PATH "/usr/share/javascript/chart.js/chart.min.js"

#define PS_PUB_TREND_MAX 12

/** District totals of the trend months, oldest first; shown[i][f] when published. */
typedef struct ps_pub_trend {
    int n;
    char month[PS_PUB_TREND_MAX][8];
    int64_t v[PS_PUB_TREND_MAX][PF_COUNT];
    int shown[PS_PUB_TREND_MAX][PF_COUNT];
} ps_pub_trend_t;

typedef struct ps_pub_site {
    const char *dir;
    int zh;
    char district[128];
    time_t generated;
} ps_pub_site_t;

/** Writes the site into s->dir (made 0755 when missing).  PS_OK or an error with err set. */
int ps_pub_site_write(const ps_pub_site_t *s, const ps_pub_t *p, const ps_pub_trend_t *tr, char *err, size_t errlen);

#endif
