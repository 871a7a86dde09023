/* conflicts.js - conflicts side by side, field by field: keep mine, keep
 * theirs, or type the merged value; the resolution is sent by a sync. */
'use strict';
async function syncNow() {
  await ps.post('/api/sync', {});
  for (let i = 0; i < 600; i++) {
    const s = await ps.get('/api/sync');
    if (!s.running) return s;
    await new Promise(ok => setTimeout(ok, 300));
  }
}
function card(c, labels) {
  const mineSide = c.mine, theirsSide = c.mine === 'kept' ? 'lost' : 'kept';
  const colMine = mineSide ? ps.t('我的', 'Mine') : ps.t('记录现值', 'The record now');
  const colTheirs = mineSide ? ps.t('对方的', 'Theirs') : ps.t('另一修改', 'The other edit');
  const left = mineSide || 'kept', right = mineSide ? theirsSide : 'lost';
  const tb = ps.el('tbody');
  const rows = [];
  for (const f of c.fields) {
    const name = 'c-' + c.id + '-' + f.field;
    const a = f[left], b = f[right];
    const edit = ps.el('input', {type: 'text', class: 'merged', 'data-field': f.field, value: a, size: 20});
    const rMine = ps.el('input', {type: 'radio', name, value: 'mine', checked: true, class: 'keep-mine'});
    const rTheirs = ps.el('input', {type: 'radio', name, value: 'theirs', class: 'keep-theirs'});
    const rEdit = ps.el('input', {type: 'radio', name, value: 'edit', class: 'keep-edit'});
    const errEl = ps.el('div', {class: 'err field-err', 'data-field': f.field});
    edit.addEventListener('focus', () => { rEdit.checked = true; });
    rows.push({f, rMine, rTheirs, rEdit, edit, a, b, errEl});
    tb.append(ps.el('tr', {class: a !== b ? 'diff' : ''}, ps.el('th', {text: f.field === '*' ? ps.t('整条记录', 'whole record') : f.field === 'deleted' ? ps.t('是否删除', 'deleted') : labels[f.field] || f.field}),
      ps.el('td', {}, ps.el('label', {}, rMine, ' ', a === '' ? ps.t('（空）', '(empty)') : a)),
      ps.el('td', {}, ps.el('label', {}, rTheirs, ' ', b === '' ? ps.t('（空）', '(empty)') : b)),
      ps.el('td', {}, ps.el('label', {}, rEdit, ' ', f.field === '*' ? '' : edit), errEl)));
  }
  const err = ps.el('div', {class: 'err'});
  const btn = ps.el('button', {type: 'button', class: 'resolve', text: ps.t('按所选解决并同步', 'Resolve as chosen and sync')});
  btn.addEventListener('click', async () => {
    const values = {};
    let take;
    for (const x of rows) {
      const side = x.rMine.checked ? left : x.rTheirs.checked ? right : null;
      if (x.f.field === '*') { take = side || left; continue; }
      values[x.f.field] = side ? x.f[side] : x.edit.value.trim();
    }
    try {
      const r = await ps.post('/api/conflicts/resolve', {id: c.id, values, take});
      err.textContent = '';
      for (const x of rows) x.errEl.textContent = '';
      if (r.errors && r.errors.length) {
        /* Each reason next to its field, as the form shows them; the rest below. */
        const rest = [];
        for (const e of r.errors) {
          const x = rows.find(y => y.f.field === e.field);
          if (x) x.errEl.textContent = e.reason; else rest.push((labels[e.field] || e.field) + ': ' + e.reason);
        }
        err.textContent = rest.join('; ');
        return;
      }
      if (r.unchanged) { ps.status(ps.t('您的修改就是记录现在的值，已保留；等待对方设备处理。', 'Your edit is the value the record has; it stays. The other device is told.')); return; }
      ps.status(ps.t('已保存，正在同步…', 'Stored; syncing…'));
      const s = await syncNow();
      await load();
      ps.status(s.last && s.last.ok ? ps.t('冲突已解决并同步', 'Conflict resolved and synced') : ps.t('已保存，下次同步时发送', 'Stored; it is sent at the next sync'));
    } catch (e) { ps.fail(e); }
  });
  return ps.el('section', {class: 'conflict', id: 'conflict-' + c.id, 'data-record': c.record_id},
    ps.el('h2', {}, kindLabel(c.kind) + ' ', ps.el('a', {href: '/record.html?id=' + c.record_id, text: c.kept ? summary(c.kept) : c.record_id})),
    ps.el('p', {text: (mineSide === 'lost' ? ps.t('您的修改未被采用。', 'Your edit lost. ') : mineSide === 'kept' ? ps.t('您的修改已被采用，对方的未被采用。', 'Your edit was kept; the other was not. ') : '') + (c.reason || '')}),
    ps.el('table', {}, ps.el('thead', {}, ps.el('tr', {}, ps.el('th', {text: ps.t('字段', 'Field')}), ps.el('th', {text: colMine}),
      ps.el('th', {text: colTheirs}), ps.el('th', {text: ps.t('合并后的值', 'Merged value')}))), tb), err, btn);
}
async function load() {
  const d = await ps.get('/api/conflicts');
  const box = document.getElementById('conflicts');
  box.textContent = '';
  if (!d.listed) {
    box.append(ps.el('p', {text: ps.t('冲突列表来自服务器：请先同步。', 'The list of conflicts comes from the server: sync first.')}));
  }
  box.append(ps.el('button', {type: 'button', id: 'refresh', text: ps.t('同步并刷新', 'Sync and refresh'), onclick: async () => {
    try { ps.status(ps.t('正在同步…', 'Syncing…')); await syncNow(); ps.status(''); await load(); } catch (e) { ps.fail(e); } }}));
  if (d.listed && !d.conflicts.length) ps.status(ps.t('没有未解决的冲突', 'no open conflicts'));
  for (const c of d.conflicts) {
    const labels = {};
    for (const f of await fieldsOf(c.kind)) labels[f.name] = f.label;
    box.append(card(c, labels));
  }
}
ps.start(load);
