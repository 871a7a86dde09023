/* refused.js - the changes the server refused, with its reasons: correct
 * one (back into the outbox) or discard it. */
'use strict';
async function load() {
  const d = await ps.get('/api/refused');
  const tb = document.querySelector('#refused tbody');
  tb.textContent = '';
  ps.status(d.refused.length ? '' : ps.t('没有被退回的修改', 'no refused changes'));
  const changes = {new: ['新增', 'new'], edit: ['修改', 'edit'], delete: ['删除', 'delete']};
  for (const e of d.refused) {
    const r = e.record, c = changes[e.change] || [e.change, e.change];
    const reasons = ps.el('ul', {class: 'err'});
    for (const x of e.errors) reasons.append(ps.el('li', {text: (x.field ? x.field + ': ' : '') + x.reason}));
    if (e.status === 'conflict') reasons.append(ps.el('li', {text: ps.t('服务器将其作为冲突保留', 'kept by the server as a conflict')}));
    const fix = e.status === 'conflict' ? ps.el('a', {href: '/conflicts.html', text: ps.t('去解决冲突', 'resolve the conflict')})
      : ps.el('a', {href: '/edit.html?refused=' + r.id, class: 'correct', text: ps.t('改正', 'Correct')});
    const drop = ps.el('button', {type: 'button', class: 'discard', text: ps.t('放弃', 'Discard'), onclick: async () => {
      if (!confirm(ps.t('放弃这条修改？放弃后无法恢复。', 'Discard this change? It cannot be undone.'))) return;
      await ps.post('/api/refused/discard', {id: r.id}); await load();
    }});
    tb.append(ps.el('tr', {'data-id': r.id}, ps.el('td', {text: kindLabel(r.kind) + ' · ' + ps.t(c[0], c[1])}),
      ps.el('td', {}, ps.el('a', {href: '/record.html?id=' + r.id, text: summary(r)})), ps.el('td', {}, reasons),
      ps.el('td', {}, fix, ' ', drop)));
  }
}
ps.start(async () => {
  document.querySelector('#refused thead').append(ps.el('tr', {}, ps.el('th', {text: ps.t('修改', 'Change')}),
    ps.el('th', {text: ps.t('记录', 'Record')}), ps.el('th', {text: ps.t('退回原因', 'Why')}), ps.el('th')));
  await load();
});
