/* edit.js - the add/edit form of every kind, built from the field
 * dictionary (/api/fields): dates and choices as proper inputs, linked
 * people picked by searching as you type, the ID number checked (form and
 * duplicates) as it is typed, and every error shown next to its field.
 * ?kind=K (new), ?kind=K&id=ID (edit), ?refused=ID (correct a refused change). */
'use strict';
let form, kind, recId, refusedId, inputs = {}, orig = {};

function debounce(fn, ms) { let t; return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); }; }

/* A pick-list: type a name or ID number, choose from what the cache finds. */
function pickList(f, value, label) {
  const hidden = ps.el('input', {type: 'hidden', name: f.name, id: 'f-' + f.name, value: value || ''});
  const text = ps.el('input', {type: 'text', id: 'pick-' + f.name, size: 30, autocomplete: 'off', value: label || value || '',
    placeholder: f.ref_kind === 'person' ? ps.t('输入姓名或身份证号查找', 'type a name or ID number') : ps.t('输入地址查找', 'type an address')});
  const ul = ps.el('ul', {id: 'picks-' + f.name, hidden: true});
  const search = debounce(async () => {
    const q = text.value.trim();
    ul.textContent = '';
    if (!q) { ul.hidden = true; return; }
    const res = f.ref_kind === 'person' ? (await ps.get('/api/find?limit=15&q=' + encodeURIComponent(q))).results
      : (await ps.get('/api/list?limit=15&kind=' + f.ref_kind + '&q=' + encodeURIComponent(q))).rows;
    for (const r of res) {
      const li = ps.el('li', {'data-id': r.id, class: 'pick', text: r.kind === 'person'
        ? r.name + ' · ' + (r.birth_date || '') + ' · ' + (r.id_number || '') : summary(r)});
      li.addEventListener('mousedown', ev => { ev.preventDefault(); hidden.value = r.id; text.value = r.kind === 'person' ? r.name : summary(r); ul.hidden = true; });
      ul.append(li);
    }
    if (!res.length) ul.append(ps.el('li', {class: 'none', text: ps.t('没有找到', 'nothing found')}));
    ul.hidden = false;
  }, 200);
  text.addEventListener('input', () => { hidden.value = /^[0-9a-f-]{36}$/i.test(text.value.trim()) ? text.value.trim() : ''; search(); });
  text.addEventListener('blur', () => setTimeout(() => { ul.hidden = true; }, 150));
  inputs[f.name] = hidden;
  return ps.el('span', {class: 'picklist'}, text, hidden, ul);
}

function inputFor(f, v, label) {
  let e;
  if (f.input === 'ref') return pickList(f, v, label);
  if (f.input === 'select') {
    e = ps.el('select', {name: f.name, id: 'f-' + f.name}, ps.el('option', {value: '', text: ''}));
    for (const o of f.options) e.append(ps.el('option', {value: o.value, text: o.label}));
    e.value = v === undefined || v === null ? '' : String(v);
  } else {
    e = ps.el('input', {name: f.name, id: 'f-' + f.name, type: f.input === 'date' ? 'date' : 'text',
      size: f.input === 'idnum' ? 20 : 30, value: v === undefined || v === null ? '' : String(v)});
  }
  inputs[f.name] = e;
  return e;
}

function fieldError(name, msg) {
  const s = document.getElementById('err-' + name);
  if (s) { s.textContent = msg || ''; return true; }
  return false;
}

async function idCheck() {
  const v = inputs.id_number.value.trim(), w = document.getElementById('warn-id_number');
  fieldError('id_number', '');
  w.textContent = '';
  if (v.length < 15) return;
  const r = await ps.get('/api/dupcheck?id_number=' + encodeURIComponent(v) + (recId ? '&self=' + recId : ''));
  if (r.invalid) fieldError('id_number', r.invalid);
  else if (r.duplicate) {
    w.append(ps.t('可能重复：', 'Possible duplicate: '), ps.el('a', {href: '/record.html?id=' + r.duplicate_id, text: r.duplicate_name}), ' ' + r.duplicate);
  }
}

async function build(values, labels) {
  form = document.getElementById('form');
  form.textContent = '';
  inputs = {};
  const fields = await fieldsOf(kind);
  const stored = new Set(fields.filter(f => f.stored).map(f => f.stored));
  for (const f of fields) {
    if (stored.has(f.name)) continue;
    let v = values[f.name];
    if (f.stored && values[f.stored] !== undefined && values[f.stored] !== '' && Number(values[f.stored]) !== 0) v = (Number(values[f.stored]) / 100).toFixed(2);
    if (f.input === 'select' && typeof v === 'boolean') v = String(v);
    if ((v === 0 || v === '0') && f.input !== 'select' && f.input !== 'number') v = '';
    const row = ps.el('div', {class: 'form-row', id: 'row-' + f.name},
      ps.el('label', {for: 'f-' + f.name, class: f.required ? 'required' : '', text: f.label}),
      inputFor(f, v, labels[f.name]),
      ps.el('span', {class: 'field-error', id: 'err-' + f.name}),
      f.name === 'id_number' ? ps.el('span', {class: 'warn', id: 'warn-id_number'}) : null,
      ps.el('span', {class: 'help', text: f.help}));
    form.append(row);
  }
  for (const [k, e] of Object.entries(inputs)) orig[k] = e.value;
  if (inputs.id_number) inputs.id_number.addEventListener('input', debounce(() => idCheck().catch(ps.fail), 300));
  form.append(ps.el('div', {class: 'form-row'}, ps.el('label'),
    ps.el('button', {type: 'submit', id: 'save', text: refusedId ? ps.t('改正并重新提交', 'Correct and resubmit') : ps.t('保存', 'Save')})));
  form.addEventListener('submit', ev => { ev.preventDefault(); save().catch(ps.fail); });
}

async function save() {
  const values = {};
  /* A new record sends what was typed; an edit only what changed. */
  for (const [k, e] of Object.entries(inputs))
    if (recId || refusedId ? e.value !== orig[k] : e.value.trim() !== '') values[k] = e.value.trim();
  for (const s of document.querySelectorAll('.field-error')) s.textContent = '';
  ps.status(ps.t('正在保存…', 'Saving…'));
  const r = refusedId ? await ps.post('/api/refused/resubmit', {id: refusedId, values})
    : await ps.post('/api/record/save', {kind, id: recId || undefined, values});
  if (r.errors && r.errors.length) {
    const other = [];
    for (const e of r.errors) if (!fieldError(e.field, e.reason + (e.value ? ps.t('（值：', ' (value: ') + e.value + ps.t('）', ')') : ''))) other.push((e.field ? e.field + ': ' : '') + e.reason);
    ps.status(ps.t('有错误，请按提示改正后再保存。', 'Please correct the errors shown.') + (other.length ? ' ' + other.join('; ') : ''), true);
    const first = document.querySelector('.field-error:not(:empty)');
    if (first) first.scrollIntoView({block: 'center'});
    return;
  }
  location.href = '/record.html?id=' + (r.id || refusedId) + '&saved=1';
}

ps.start(async () => {
  kind = ps.param('kind');
  recId = ps.param('id');
  refusedId = ps.param('refused');
  let values = {}, labels = {};
  if (refusedId) {
    const e = (await ps.get('/api/refused')).refused.filter(x => x.record.id === refusedId).pop();
    if (!e) { ps.status(ps.t('没有这条被退回的修改', 'no such refused change'), true); return; }
    values = e.record; labels = e.record.labels || {}; kind = e.record.kind;
    document.getElementById('title').textContent = ps.t('改正被退回的', 'Correct the refused ') + kindLabel(kind);
    const ul = ps.el('ul', {class: 'err', id: 'refused-reasons'});
    for (const x of e.errors) ul.append(ps.el('li', {text: (x.field ? x.field + ': ' : '') + x.reason}));
    form = document.getElementById('form');
    form.before(ul);
    await build(values, labels);
    for (const x of e.errors) fieldError(x.field, x.reason);
    return;
  }
  if (recId) {
    const d = await ps.get('/api/record/' + encodeURIComponent(recId));
    values = d.record; labels = d.record.labels || {}; kind = d.record.kind;
    document.getElementById('title').textContent = ps.t('修改', 'Edit ') + kindLabel(kind) + ' ' + summary(d.record);
  } else {
    if (!kind) kind = 'person';
    document.getElementById('title').textContent = ps.t('新增', 'New ') + kindLabel(kind);
    const p = ps.param('person');
    if (p) {
      const d = await ps.get('/api/record/' + encodeURIComponent(p));
      const ref = kind === 'birth' ? 'mother_id' : 'person_id';
      values[ref] = p; labels[ref] = d.record.name;
    }
  }
  await build(values, labels);
});
