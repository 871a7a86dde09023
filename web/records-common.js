/* records-common.js - what several pages show of records: kinds, states,
 * field labels from the field dictionary, a record's one-line summary. */
'use strict';
const KINDS = [
  ['person', '人员', 'Person'], ['household', '家庭户', 'Household'], ['birth', '出生', 'Birth'],
  ['migration', '流动', 'Migration'], ['benefit', '奖励扶助', 'Benefit'], ['service_visit', '服务随访', 'Service visit'],
];
function kindLabel(k) { const e = KINDS.find(x => x[0] === k); return e ? ps.t(e[1], e[2]) : k; }
const fieldCache = {};
async function fieldsOf(kind) {
  if (!fieldCache[kind]) fieldCache[kind] = (await ps.get('/api/fields?kind=' + encodeURIComponent(kind))).fields;
  return fieldCache[kind];
}
/* The value of field f of record r as a clerk reads it. */
function shown(r, f) {
  const l = r.labels || {};
  if (l[f.name]) return l[f.name];
  let v = r[f.stored || f.name];
  if (f.stored && v !== undefined && v !== '' && v !== null) v = (Number(v) / 100).toFixed(2);
  if (v === true) return ps.t('是', 'yes');
  if (v === false) return ps.t('否', 'no');
  return v === undefined || v === null ? '' : String(v);
}
function stateBadge(st) {
  if (!st) return ps.el('span');
  const names = {synced: ['已同步', 'synced'], pending: ['待同步', 'waiting to sync'],
                 refused: ['被退回', 'refused'], conflict: ['有冲突', 'in conflict']};
  const n = names[st.state] || [st.state, st.state];
  return ps.el('span', {class: 'state ' + st.state, 'data-state': st.state, text: ps.t(n[0], n[1])});
}
function summary(r) {
  switch (r.kind) {
  case 'person': return r.name + ' ' + (r.birth_date || '');
  case 'household': return r.address || '';
  case 'birth': return (r.labels.mother_id || '') + ' ' + r.birth_date;
  case 'migration': return (r.labels.person_id || '') + ' ' + (r.labels.direction || r.direction) + ' ' + (r.start_date || '');
  case 'benefit': return (r.labels.person_id || '') + ' ' + (r.labels.scheme || r.scheme) + ' ' + (r.period || '');
  case 'service_visit': return (r.labels.person_id || '') + ' ' + (r.labels.service || r.service) + ' ' + (r.visit_date || '');
  default: return r.id;
  }
}
function recordLink(r) { return ps.el('a', {href: '/record.html?id=' + r.id, text: summary(r) || r.id}); }
function fmtTime(ms) { ms = Number(ms); return ms ? new Date(ms).toLocaleString(ps.zh ? 'zh-CN' : 'en-GB') : ps.t('从未', 'never'); }
