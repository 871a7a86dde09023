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
  if (!r) { ps.status(ps.t('这条新记录被服务器退回，尚未保存到服务器。', 'This new record was refused by the server.'), true); return null; }
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
  return r;
}
const ACTIONS = {create: ['新建', 'created'], update: ['修改', 'changed'], delete: ['删除', 'deleted'],
  restore: ['恢复', 'restored'], merge: ['合并', 'merged'], resolve: ['解决冲突', 'conflict resolved']};
function whoText(v) {
  const dev = v.this_device ? ps.t('本设备', 'this device') : ps.t('设备 ', 'device ') + v.node.slice(0, 8);
  return v.audited ? v.cert_name + ' (' + v.cert_role + ' ' + v.cert_orgunit + ') · ' + dev : dev;
}
/* The versions the server keeps, with who and when (GET /api/history/ID);
 * offline, a note: the table above is then all this device knows. */
async function showVersions(id, kind) {
  const box = ps.el('section', {id: 'versions'}, ps.el('h2', {text: ps.t('版本历史（服务器）', 'Versions (server)')}));
  document.getElementById('history').append(box);
  const wait = ps.el('p', {text: ps.t('正在向服务器查询…', 'Asking the server…')});
  box.append(wait);
  const d = await ps.get('/api/history/' + encodeURIComponent(id));
  wait.remove();
  if (d.late || d.held) {
    box.append(ps.el('p', {id: 'versions-offline', class: 'err late', text: d.error + ps.t(
      '：以前的版本保存在服务器上，本机只保存最新版本（见上表）。请稍后再打开本页。',
      ': earlier versions are kept on the server; this device holds the latest one only (above). Open this page again later.')},
      ' ', ps.retry(d)));
    return;
  }
  if (d.offline || !d.history) {
    box.append(ps.el('p', {id: 'versions-offline', class: 'err', text: (d.offline
      ? ps.t('无法连接服务器：以前的版本保存在服务器上，本机只保存最新版本（见上表）。',
             'The server cannot be reached: earlier versions are kept on the server; this device holds the latest one only (above).')
      : '') + ' ' + (d.error || '')}, ' ', ps.retry(d)));
    return;
  }
  const labels = {};
  for (const f of await fieldsOf(kind)) labels[f.name] = f.label;
  const h = d.history, tb = ps.el('tbody');
  for (const v of h.versions) {
    const a = ACTIONS[v.action] || [v.action || '?', v.action || '?'];
    const changed = v.changed === null ? (v.gen === 1 ? '' : '…') : v.changed.map(n => labels[n] || n).join('、');
    tb.append(ps.el('tr', {'data-gen': String(v.gen)},
      ps.el('td', {text: String(v.gen)}),
      ps.el('td', {class: 'when', text: fmtTime(v.audited ? v.time_ms : v.hlc_ms)}),
      ps.el('td', {class: 'action', text: ps.t(a[0], a[1])}),
      ps.el('td', {class: 'who', text: whoText(v)}),
      ps.el('td', {class: 'changed', text: changed})));
  }
  box.append(ps.el('table', {id: 'versions-table'}, ps.el('thead', {}, ps.el('tr', {},
    ps.el('th', {text: ps.t('版本', 'Version')}), ps.el('th', {text: ps.t('时间', 'When')}),
    ps.el('th', {text: ps.t('操作', 'Action')}), ps.el('th', {text: ps.t('修改人', 'By')}),
    ps.el('th', {text: ps.t('修改的字段', 'Fields changed')}))), tb));
  const notes = [];
  if (h.earlier) notes.push(ps.t('更早的 ' + h.earlier + ' 个版本未显示', h.earlier + ' earlier versions not shown'));
  if (h.hidden) notes.push(ps.t(h.hidden + ' 个版本产生于本机权限范围之外，未显示', h.hidden + ' versions made outside this device\'s scope are not shown'));
  if (notes.length) box.append(ps.el('p', {text: notes.join('；')}));
}
ps.start(async () => {
  document.getElementById('print').addEventListener('click', () => window.print());
  const r = await show();
  if (r) await showVersions(r.id, r.kind);
});
