/* search.js - the search page: ID number, name, or name and birth date. */
'use strict';
async function search(q) {
  const tb = document.querySelector('#results tbody');
  tb.textContent = '';
  const r = await ps.get('/api/find?limit=50&q=' + encodeURIComponent(q));
  document.getElementById('results').hidden = r.results.length === 0;
  ps.status(r.results.length ? ps.t('找到 ' + r.results.length + ' 人', r.results.length + ' found') : ps.t('没有找到', 'no person found'));
  for (const p of r.results) {
    const l = p.labels || {};
    tb.append(ps.el('tr', {},
      ps.el('td', {}, ps.el('a', {href: '/record.html?id=' + p.id, class: 'person-link', text: p.name})),
      ps.el('td', {text: l.sex || p.sex}), ps.el('td', {text: p.birth_date}),
      ps.el('td', {text: p.id_number}), ps.el('td', {text: p.orgunit})));
  }
}
ps.start(async () => {
  const f = document.getElementById('search-form');
  f.addEventListener('submit', ev => { ev.preventDefault(); const q = document.getElementById('q').value.trim(); if (q) { search(q).catch(ps.fail); } });
  const q = ps.param('q');
  if (q) { document.getElementById('q').value = q; await search(q); }
});
