/* records.js - the records of this cache, a page at a time (the server
 * reads from a cursor and stops at the page or at a bound), filtered by
 * kind, by any value, or to the changes waiting to sync. */
'use strict';
let next = null, shownCount = 0;
async function load(reset) {
  const kind = document.getElementById('kind').value, q = document.getElementById('q').value.trim();
  const pending = document.getElementById('pending').checked;
  const tb = document.querySelector('#rows tbody');
  if (reset) { tb.textContent = ''; next = null; shownCount = 0; }
  const url = '/api/list?limit=50&kind=' + kind + '&q=' + encodeURIComponent(q) + (pending ? '&pending=1' : '') + (next ? '&after=' + next : '');
  let d = await ps.get(url);
  /* A filter that matches little: the server stops after reading a bounded
   * number of records; keep asking (bounded) until the page has rows. */
  for (let i = 0; i < 50 && d.rows.length === 0 && d.next; i++) {
    next = d.next;
    d = await ps.get('/api/list?limit=50&kind=' + kind + '&q=' + encodeURIComponent(q) + (pending ? '&pending=1' : '') + '&after=' + next);
  }
  for (const r of d.rows) {
    tb.append(ps.el('tr', {}, ps.el('td', {text: kindLabel(r.kind)}), ps.el('td', {}, recordLink(r)),
      ps.el('td', {text: r.orgunit}), ps.el('td', {}, stateBadge(r.state))));
  }
  shownCount += d.rows.length;
  next = d.next;
  document.getElementById('more').hidden = !next;
  document.getElementById('page-info').textContent = ps.t('已显示 ' + shownCount + ' 条', shownCount + ' shown');
  ps.status(shownCount ? '' : ps.t('没有记录', 'no records'));
}
ps.start(async () => {
  const sel = document.getElementById('kind');
  sel.append(ps.el('option', {value: '', text: ps.t('全部类型', 'all kinds')}));
  for (const [k] of KINDS) sel.append(ps.el('option', {value: k, text: kindLabel(k)}));
  sel.value = ps.param('kind') || 'person';
  document.querySelector('#rows thead').append(ps.el('tr', {}, ps.el('th', {text: ps.t('类型', 'Kind')}),
    ps.el('th', {text: ps.t('记录', 'Record')}), ps.el('th', {text: ps.t('单位', 'Unit')}), ps.el('th', {text: ps.t('状态', 'State')})));
  const nl = document.getElementById('new-link');
  const setNew = () => { nl.href = '/edit.html?kind=' + (sel.value || 'person'); };
  setNew();
  sel.addEventListener('change', () => { setNew(); load(true).catch(ps.fail); });
  document.getElementById('filter').addEventListener('submit', ev => { ev.preventDefault(); load(true).catch(ps.fail); });
  document.getElementById('more').addEventListener('click', () => load(false).catch(ps.fail));
  await load(true);
});
