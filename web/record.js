/* record.js - one record: its fields, state, history and (a person) the
 * records linked to it; printable (print CSS in app.css). */
'use strict';
const LINKED = [
  ['household_members', '家庭成员', 'Household members'], ['births', '生育', 'Births'],
  ['migrations', '流动', 'Migrations'], ['benefits', '奖励扶助', 'Benefits'],
  ['visits', '服务随访', 'Service visits'], ['households_headed', '任户主的家庭户', 'Households headed'],
];
function stateBox(st, id) {
  const box = document.getElementById('state');
  box.append(ps.el('p', {}, ps.t('状态：', 'State: '), stateBadge(st)));
  if (st.state === 'refused') {
    const ul = ps.el('ul', {class: 'err'});
    for (const e of st.reasons || []) ul.append(ps.el('li', {text: (e.field ? e.field + ': ' : '') + e.reason}));
    box.append(ul, ps.el('a', {href: '/edit.html?refused=' + id, id: 'correct-link', class: 'noprint', text: ps.t('改正并重新提交', 'Correct and resubmit')}));
  } else if (st.state === 'conflict') {
    box.append(ps.el('a', {href: '/conflicts.html#' + st.conflict_id, class: 'noprint', text: ps.t('解决冲突', 'Resolve the conflict')}));
  }
}
async function show() {
  const id = ps.param('id');
  const d = await ps.get('/api/record/' + encodeURIComponent(id));
  stateBox(d.state, id);
  const r = d.record;
  if (!r) { ps.status(ps.t('这条新记录被服务器退回，尚未保存到服务器。', 'This new record was refused by the server.'), true); return; }
  document.getElementById('title').textContent = kindLabel(r.kind) + ' ' + summary(r);
  const tb = document.querySelector('#fields tbody');
  for (const f of await fieldsOf(r.kind)) {
    if (f.name === 'amount_fen') continue;
    const v = shown(r, f);
    const td = ps.el('td', {'data-field': f.name});
    if (f.input === 'ref' && r[f.name]) td.append(ps.el('a', {href: '/record.html?id=' + r[f.name], text: v}));
    else td.textContent = v;
    tb.append(ps.el('tr', {}, ps.el('th', {text: f.label}), td));
  }
  if (r.deleted) ps.status(ps.t('已删除', 'deleted'), true);
  const e = document.getElementById('edit-link');
  e.href = '/edit.html?kind=' + r.kind + '&id=' + r.id;
  const h = d.history, hist = document.getElementById('history');
  hist.append(ps.el('h2', {text: ps.t('记录历史', 'History')}), ps.el('table', {}, ps.el('tbody', {},
    ps.el('tr', {}, ps.el('th', {text: ps.t('创建', 'Created')}), ps.el('td', {text: fmtTime(h.created_ms)})),
    ps.el('tr', {}, ps.el('th', {text: ps.t('最后修改', 'Last changed')}), ps.el('td', {text: fmtTime(h.updated_ms) + ' · ' +
      (h.by_this_device ? ps.t('本设备', 'this device') : ps.t('设备 ', 'device ') + h.changed_by.slice(0, 8))})),
    ps.el('tr', {}, ps.el('th', {text: ps.t('服务器版本', 'Server revision')}), ps.el('td', {text: h.gen === null ? ps.t('尚未同步', 'not yet synced') : h.gen})),
    ps.el('tr', {}, ps.el('th', {text: ps.t('待同步的修改', 'Changes waiting')}), ps.el('td', {text: String(d.state.pending || 0)})))));
  const box = document.getElementById('linked');
  if (r.kind === 'person') {
    if (d.linked.household) box.append(ps.el('h2', {text: ps.t('家庭户', 'Household')}), ps.el('p', {}, recordLink(d.linked.household)));
    for (const [k, zh, en] of LINKED) {
      const list = d.linked[k] || [];
      const sec = ps.el('section', {id: 'linked-' + k}, ps.el('h2', {text: ps.t(zh, en) + ' (' + list.length + ')'}));
      const ul = ps.el('ul');
      for (const x of list) ul.append(ps.el('li', {}, recordLink(x), ' ', stateBadge(x.state)));
      sec.append(ul);
      const add = {births: 'birth', migrations: 'migration', benefits: 'benefit', visits: 'service_visit'}[k];
      if (add) sec.append(ps.el('a', {class: 'noprint add-' + add, href: '/edit.html?kind=' + add + '&person=' + r.id,
        text: ps.t('新增', 'Add') + kindLabel(add)}));
      box.append(sec);
    }
  }
}
ps.start(async () => {
  document.getElementById('print').addEventListener('click', () => window.print());
  await show();
});
