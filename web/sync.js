/* sync.js - the sync button: starts a sync, shows it running, then what it
 * did; last sync, changes waiting and refused. */
'use strict';
let polling = false;
function fact(label, value, id) {
  return ps.el('tr', {}, ps.el('th', {text: label}), ps.el('td', {id, text: value}));
}
async function refresh() {
  const s = await ps.get('/api/sync');
  const tb = document.querySelector('#sync-facts tbody');
  tb.textContent = '';
  /* The bar and its percentage: while the sync runs, and its end (100 %
   * when it completed) until the page is left. */
  const bar = document.getElementById('progress'), pct = document.getElementById('sync-percent');
  bar.hidden = pct.hidden = !s.progress;
  if (s.progress) {
    bar.max = 100;
    bar.value = s.progress.percent;
    const p = s.progress;
    pct.textContent = p.percent + '%';
    pct.title = ps.t('送出 ' + p.pushed + '/' + p.push_total + '，接收 ' + p.pulled + '/' + p.pull_total,
                     'sent ' + p.pushed + '/' + p.push_total + ', received ' + p.pulled + '/' + p.pull_total);
  }
  document.getElementById('sync-go').disabled = s.running;
  if (s.running) tb.append(fact(ps.t('正在同步', 'Syncing'), Math.round(s.elapsed_ms / 1000) + ' s', 'sync-running'));
  if (s.pending !== undefined) {
    tb.append(fact(ps.t('上次同步', 'Last sync'), fmtTime(s.last_sync_ms), 'last-sync'),
      fact(ps.t('待同步的修改', 'Changes waiting'), s.pending, 'pending-count'),
      fact(ps.t('被退回的修改', 'Refused changes'), s.refused, 'refused-count'));
    if (s.last_error) tb.append(fact(ps.t('上次失败原因', 'Last failure'), s.last_error, 'last-error'));
  }
  if (s.last && !s.running) {
    const st = s.last.stats;
    tb.append(fact(ps.t('本次结果', 'This sync'), s.last.ok
      ? ps.t('完成：送出 ' + st.accepted + '，退回 ' + st.rejected + '，冲突 ' + st.conflicts + '，收到 ' + st.pulled,
             'done: ' + st.accepted + ' sent, ' + st.rejected + ' refused, ' + st.conflicts + ' conflicts, ' + st.pulled + ' received')
      : ps.t('失败：', 'failed: ') + s.last.error, 'sync-result'));
    if (s.last.ok) tb.append(fact(ps.t('未解决的冲突', 'Open conflicts'), s.last.open_conflicts, 'open-conflicts'));
  }
  return s.running;
}
async function poll() {
  if (polling) return;
  polling = true;
  try { for (let i = 0; i < 600 && await refresh(); i++) await new Promise(ok => setTimeout(ok, 300)); }
  finally { polling = false; }
  ps.status(ps.t('同步结束', 'Sync finished'));
}
ps.start(async () => {
  document.getElementById('sync-go').addEventListener('click', async () => {
    /* The last sync's result goes away: what shows next is this one's. */
    document.querySelector('#sync-facts tbody').textContent = '';
    try { await ps.post('/api/sync', {}); ps.status(ps.t('正在同步…', 'Syncing…')); await poll(); } catch (e) { ps.fail(e); }
  });
  if (await refresh()) poll();
});
