/* district.js - the district's pages of popsync ui: dashboard, printable
 * monthly report, data quality, monthly close and node status.  The page
 * says which it is in <body data-page>.  Talks to /api/district/*
 * (client/ui_district*.c) through ps.get/ps.post of shell.js; charts with
 * Chart.js served from Debian's copy (/vendor/chart.js/chart.min.js). */
'use strict';
const dist = {
  charts: {},
  data: null,
  /* Labels of the monthly report's counts and rates (docs/queries.md §3). */
  L: {
    persons_total: ['登记人口', 'Registered persons'], persons_new: ['新登记', 'New registrations'],
    births_male: ['出生(男)', 'Births, boys'], births_female: ['出生(女)', 'Births, girls'],
    births_total: ['出生合计', 'Births'], sex_ratio_at_birth: ['出生性别比', 'Sex ratio'],
    inflow: ['流入', 'Inflow'], outflow: ['流出', 'Outflow'], migrations: ['流动合计', 'Migrations'],
    submitted: ['已通报', 'Submitted'], feedback: ['已反馈', 'Feedback'],
    submission_rate_pct: ['通报率', 'Submitted %'], feedback_rate_pct: ['反馈率', 'Feedback %'],
    submitted_on_time_pct: ['及时通报率', 'Subm. on time'], feedback_on_time_pct: ['及时反馈率', 'Fb. on time'],
    feedback_overdue: ['超期未反馈', 'Feedback overdue'],
    benefits_paid: ['奖扶发放人次', 'Benefits paid'], benefits_paid_yuan: ['发放金额(元)', 'Amount (yuan)'],
    visits_prepregnancy_check: ['免费孕前优生健康检查', 'Pre-pregnancy check'],
    visits_reproductive_check: ['生殖健康检查', 'Reproductive check'], visits_followup: ['随访服务', 'Follow-up visit'],
    visits_contraceptive_supplies: ['避孕药具发放', 'Contraceptive supplies'], visits_consultation: ['咨询服务', 'Consultation'],
    visits_total: ['服务合计', 'Service visits'], followup_rate_pct: ['随访率', 'Follow-up rate'],
    close_state: ['月结状态', 'Close state'],
  },
  lab(k) { const l = dist.L[k]; return l ? ps.t(l[0], l[1]) : k; },
  STATES: {'': ['未上报', 'Open'], submitted: ['已上报', 'Submitted'], approved: ['已批准', 'Approved'], returned: ['已退回', 'Returned']},
  state(s) { const l = dist.STATES[s || ''] || [s, s]; return ps.t(l[0], l[1]); },
  COLORS: ['#3367d6', '#d64550', '#2e9d5b', '#f0a030', '#7e57c2', '#00838f'],
  rate(x, pct) { return x === null || x === undefined ? '—' : x.toFixed(1) + (pct ? '%' : ''); },
  yuan(fen) { return (fen / 100).toFixed(2); },
  when(ms) { if (!ms) return ''; const d = new Date(Number(ms)); return d.toLocaleString(ps.zh ? 'zh-CN' : 'en-GB', {hour12: false}); },
  thisMonth() { const d = new Date(); return d.getUTCFullYear() + '-' + String(d.getUTCMonth() + 1).padStart(2, '0'); },
  month() {
    const m = ps.param('month');
    return m && /^\d{4}-(0[1-9]|1[0-2])$/.test(m) ? m : dist.thisMonth();
  },
  /* The month picker: reloads the page for the month chosen. */
  monthPicker(m) {
    const inp = document.getElementById('month');
    if (!inp) return;
    inp.value = m;
    inp.addEventListener('change', () => {
      const u = new URL(location.href);
      u.searchParams.set('month', inp.value);
      u.searchParams.delete('orgunit');
      location.href = u.pathname + u.search;
    });
  },
  cell(text, cls) { return ps.el('td', {class: cls, text: String(text)}); },
  chart(id, cfg) {
    const el = document.getElementById(id);
    if (!el || !window.Chart) return null;
    if (dist.charts[id]) dist.charts[id].destroy();
    cfg.options = Object.assign({animation: false, maintainAspectRatio: false, responsive: true}, cfg.options || {});
    dist.charts[id] = new Chart(el, cfg);
    return dist.charts[id];
  },
  sets(keys, rows, opts) {
    return keys.map((k, i) => Object.assign({label: dist.lab(k), data: rows.map(r => r.v[k] || 0),
      backgroundColor: dist.COLORS[i % dist.COLORS.length], borderColor: dist.COLORS[i % dist.COLORS.length]}, opts || {}));
  },
};

/* ---- dashboard ---------------------------------------------------------------- */

dist.dashboard = async function () {
  const m = dist.month();
  dist.monthPicker(m);
  ps.loading = true;
  ps.status(ps.t('正在读取…', 'Loading…'));
  const d = await ps.get('/api/district/dashboard?month=' + m);
  dist.data = d;
  const cur = d.data[d.data.length - 1];
  const names = cur.rows.map(r => r.name);
  const click = (evt, els) => { if (els.length) dist.drill(cur.rows[els[0].index].code); };
  const bar = (id, keys, stacked, title) => dist.chart(id, {type: 'bar',
    data: {labels: names, datasets: dist.sets(keys, cur.rows)},
    options: {onClick: click, plugins: {title: {display: true, text: title}},
      scales: stacked ? {x: {stacked: true}, y: {stacked: true}} : {}}});
  bar('chart-persons', ['persons_total'], false, ps.t('登记人口（按镇街）', 'Registered persons by township'));
  bar('chart-births', ['births_male', 'births_female'], true, ps.t('出生（按性别）', 'Births by sex'));
  bar('chart-migration', ['inflow', 'outflow'], false, ps.t('流入与流出', 'Inflow and outflow'));
  bar('chart-benefits', ['benefits_paid'], false, ps.t('奖扶发放人次', 'Benefits paid'));
  bar('chart-services', ['visits_prepregnancy_check', 'visits_reproductive_check', 'visits_followup',
    'visits_contraceptive_supplies', 'visits_consultation'], true, ps.t('服务（按项目）', 'Services by kind'));
  dist.chart('chart-rates', {type: 'bar', data: {labels: names, datasets: [
    {label: dist.lab('submission_rate_pct'), data: cur.rows.map(r => r.r.submission_rate_pct), backgroundColor: dist.COLORS[0]},
    {label: dist.lab('feedback_rate_pct'), data: cur.rows.map(r => r.r.feedback_rate_pct), backgroundColor: dist.COLORS[1]},
    {label: dist.lab('followup_rate_pct'), data: cur.rows.map(r => r.r.followup_rate_pct), backgroundColor: dist.COLORS[2]}]},
    options: {onClick: click, plugins: {title: {display: true, text: ps.t('通报率、反馈率、随访率（%）', 'Rates (%)')}},
      scales: {y: {min: 0, max: 100}}}});
  dist.trend('chart-trend', d, null);
  dist.table(cur);
  const o = ps.param('orgunit');
  if (o) dist.drill(o);
  ps.status(d.late || d.held ? d.stamp + ps.t('（', ' (') + d.note + ps.t('：本机缓存的统计）', ': the cache\'s counters)')
    : d.offline ? d.stamp + ps.t('（无法连接服务器，本机缓存的统计）', ' (server unreachable: the cache\'s counters)')
    : ps.t('截至 ', 'As of ') + dist.when(cur.generated_ms) + ps.t('（本月：服务器；此前各月：本机缓存）', ' (this month: the server; earlier months: this cache)'));
  const again = ps.retry(d), st = document.getElementById('status');
  if (again && st) st.append(' ', again);
  const btn = document.getElementById('count-overdue');
  if (btn) btn.onclick = () => dist.overdue(cur);
  ps.loading = false;
};

/* 12-month trend of the district (code null) or of one township. */
dist.trend = function (id, d, code) {
  const rows = d.data.map(x => code ? (x.rows.find(r => r.code === code) || {v: {}}) : (x.total || {v: {}}));
  const keys = ['births_total', 'inflow', 'outflow', 'benefits_paid', 'visits_total'];
  return dist.chart(id, {type: 'line', data: {labels: d.months, datasets: dist.sets(keys, rows, {fill: false})},
    options: {plugins: {title: {display: true, text: ps.t('近 12 个月', 'The last 12 months')}}}});
};

dist.COLS = ['persons_total', 'births_male', 'births_female', 'births_total', 'sex_ratio_at_birth', 'inflow', 'outflow',
  'submission_rate_pct', 'feedback_rate_pct', 'feedback_overdue', 'benefits_paid', 'benefits_paid_yuan', 'visits_total',
  'followup_rate_pct', 'close_state'];

dist.cellOf = function (row, k) {
  if (k === 'close_state') return row.code ? dist.state(row.close_state) : '';
  if (k === 'benefits_paid_yuan') return dist.yuan(row.v.benefits_paid_fen || 0);
  if (k === 'feedback_overdue') return row.overdue === undefined ? '?' : row.overdue;
  if (k in row.r) return dist.rate(row.r[k], k !== 'sex_ratio_at_birth');
  return row.v[k] || 0;
};

dist.table = function (cur) {
  const t = document.getElementById('indicators');
  t.textContent = '';
  const head = ps.el('tr', {}, ps.el('th', {text: ps.t('镇街', 'Township')}), ...dist.COLS.map(k => ps.el('th', {text: dist.lab(k)})));
  t.append(ps.el('thead', {}, head));
  const body = ps.el('tbody');
  for (const r of cur.rows.concat(cur.total ? [Object.assign({}, cur.total, {name: ps.t('合计', 'Total')})] : [])) {
    const name = r.code ? ps.el('a', {href: '?month=' + cur.month + '&orgunit=' + r.code, class: 'drill', 'data-code': r.code,
      text: r.name, onclick: e => { e.preventDefault(); dist.drill(r.code); }}) : r.name;
    body.append(ps.el('tr', {'data-code': r.code || 'total', class: r.code ? '' : 'total'}, ps.el('th', {}, name),
      ...dist.COLS.map(k => ps.el('td', {class: 'num', 'data-key': k, text: String(dist.cellOf(r, k))}))));
  }
  t.append(body);
};

/* Overdue feedback: the quality report's feedback_overdue issues, counted
 * when asked (the button), not with every look at the charts. */
dist.overdue = async function (cur) {
  const btn = document.getElementById('count-overdue');
  try {
    ps.loading = true;
    if (btn) btn.disabled = true;
    ps.status(ps.t('正在统计超期未反馈…', 'Counting overdue feedback…'));
    const q = await ps.get('/api/district/quality?check=feedback_overdue');
    const n = {};
    for (const i of q.issues) if (i.check === 'feedback_overdue') n[i.township] = (n[i.township] || 0) + 1;
    let tot = 0;
    for (const r of cur.rows) { r.overdue = n[r.code] || 0; tot += r.overdue; }
    if (cur.total) cur.total.overdue = tot;
    for (const td of document.querySelectorAll('#indicators td[data-key=feedback_overdue], #drill-table td[data-key=feedback_overdue]')) {
      const code = td.parentElement.dataset.code || (dist.drilled || '');
      td.textContent = code === 'total' ? tot : (n[code] || 0);
    }
    ps.status(ps.t('超期未反馈：全区 ' + tot + ' 件', 'Overdue feedback: ' + tot + ' in the district'));
  } catch (e) { ps.fail(e); }
  if (btn) btn.disabled = false;
  ps.loading = false;
};

/* Drill-down: one township's month and its 12-month trend. */
dist.drill = function (code) {
  const d = dist.data, cur = d.data[d.data.length - 1];
  const row = cur.rows.find(r => r.code === code);
  const box = document.getElementById('drill');
  if (!row || !box) return;
  box.hidden = false;
  document.getElementById('drill-name').textContent = row.name + ' (' + row.code + ')';
  const t = document.getElementById('drill-table');
  t.textContent = '';
  const keys = ['persons_total', 'persons_new', 'births_male', 'births_female', 'births_total', 'sex_ratio_at_birth',
    'inflow', 'outflow', 'submitted', 'feedback', 'submission_rate_pct', 'feedback_rate_pct', 'feedback_overdue', 'benefits_paid',
    'benefits_paid_yuan', 'visits_prepregnancy_check', 'visits_reproductive_check', 'visits_followup',
    'visits_contraceptive_supplies', 'visits_consultation', 'visits_total', 'followup_rate_pct', 'close_state'];
  for (const k of keys) t.append(ps.el('tr', {}, ps.el('th', {text: dist.lab(k)}), ps.el('td', {class: 'num', 'data-key': k, text: String(dist.cellOf(row, k))})));
  dist.drilled = code;
  dist.trend('chart-drill', d, code);
  const u = new URL(location.href);
  u.searchParams.set('month', cur.month);
  u.searchParams.set('orgunit', code);
  history.replaceState(null, '', u.pathname + u.search);
  box.scrollIntoView({block: 'start'});
};

/* ---- printable monthly report --------------------------------------------------- */

dist.report = async function () {
  const m = dist.month();
  dist.monthPicker(m);
  ps.loading = true;
  const d = await ps.get('/api/district/report?month=' + m);
  const [y, mm] = m.split('-');
  document.getElementById('r-title').textContent = ps.t('人口和计划生育统计月报', 'Monthly population and family-planning report');
  document.getElementById('r-unit').textContent = ps.t('填报单位：', 'Reporting unit: ') + d.district;
  document.getElementById('r-month').textContent = ps.t('统计月份：' + y + ' 年 ' + Number(mm) + ' 月', 'Month: ' + m);
  document.getElementById('r-deadline').textContent = ps.t('通报与反馈期限：紧急 ' + d.deadline_urgent_days + ' 天，一般 ' +
    d.deadline_normal_days + ' 天', 'Deadlines: urgent ' + d.deadline_urgent_days + ' days, others ' + d.deadline_normal_days + ' days');
  const p1 = ['persons_total', 'persons_new', 'births_male', 'births_female', 'births_total', 'sex_ratio_at_birth', 'inflow',
    'outflow', 'submission_rate_pct', 'feedback_rate_pct', 'submitted_on_time_pct', 'feedback_on_time_pct'];
  const p2 = ['benefits_paid', 'benefits_paid_yuan', 'visits_prepregnancy_check', 'visits_reproductive_check',
    'visits_followup', 'visits_contraceptive_supplies', 'visits_consultation', 'visits_total', 'followup_rate_pct', 'close_state'];
  const rows = d.rows.concat(d.total ? [Object.assign({}, d.total, {name: ps.t('合计', 'Total')})] : []);
  for (const [id, keys] of [['r-panel1', p1], ['r-panel2', p2]]) {
    const t = document.getElementById(id);
    t.textContent = '';
    t.append(ps.el('thead', {}, ps.el('tr', {}, ps.el('th', {text: ps.t('代码', 'Code')}), ps.el('th', {text: ps.t('单位', 'Unit')}),
      ...keys.map(k => ps.el('th', {text: dist.lab(k)})))));
    const b = ps.el('tbody');
    for (const r of rows)
      b.append(ps.el('tr', {class: r.code ? '' : 'total'}, ps.el('td', {text: r.code}), ps.el('td', {text: r.name}),
        ...keys.map(k => ps.el('td', {class: 'num', text: String(dist.cellOf(r, k))}))));
    t.append(b);
  }
  const today = new Date();
  document.getElementById('r-sign').textContent = ps.t('单位负责人：＿＿＿＿＿＿　　填表人：＿＿＿＿＿＿　　报出日期：',
    'Head of unit: ______________    Prepared by: ______________    Date: ') + today.toISOString().slice(0, 10);
  const st = document.getElementById('r-stamp');
  if (st) st.textContent = d.late || d.held ? d.stamp + ps.t('（', ' (') + d.note +
    ps.t('：本机缓存的统计，不含月结状态）', ': the cache\'s counters, without the close)')
    : d.offline ? d.stamp + ps.t('（无法连接服务器：本机缓存的统计，不含月结状态）',
    ' (server unreachable: the cache\'s counters, without the close)') : '';
  const again = ps.retry(d);
  if (st && again) st.append(' ', again);
  document.getElementById('print').addEventListener('click', () => window.print());
  ps.loading = false;
};

/* ---- data quality ------------------------------------------------------------------ */

dist.CHECKS = {
  duplicate_id_number: ['身份证号重复登记', 'ID number registered more than once'],
  possible_duplicate: ['姓名和出生日期相同，可能重复登记', 'Same name and birth date: possible duplicate'],
  invalid_id_number: ['身份证号无效', 'Invalid ID number'], impossible_date: ['日期不合理', 'Impossible date'],
  missing_mother: ['出生记录的母亲不存在', 'Birth whose mother is missing'],
  dangling_reference: ['引用的记录不存在或已删除', 'Reference to a missing or deleted record'],
  feedback_overdue: ['流动人口信息超期未反馈', 'Migration feedback overdue'],
};

/* The report a page at a time (the server sorts it by unit, check and
 * record), with the number of issues of each check; a check's number
 * shows only that check. */
dist.QPAGE = 200;
dist.qstate = {offset: 0, check: ''};

dist.qualityNav = function (q) {
  const s = dist.qstate, nav = document.getElementById('quality-nav');
  if (!nav) return;
  nav.textContent = '';
  const pick = (check, label) => ps.el('button', {type: 'button', class: s.check === check ? 'link on' : 'link',
    'data-check': check, text: label, onclick: () => { s.check = check; s.offset = 0; dist.quality(); }});
  let all = 0;
  for (const k of Object.keys(q.counts || {})) all += q.counts[k];
  nav.append(pick('', ps.t('全部 ', 'All ') + all));
  for (const [k, n] of Object.entries(q.counts || {})) {
    const c = dist.CHECKS[k] || [k, k];
    nav.append(' · ', pick(k, ps.t(c[0], c[1]) + ' ' + n));
  }
  const last = Math.min(q.offset + q.issues.length, q.total);
  const prev = ps.el('button', {type: 'button', id: 'quality-prev', disabled: q.offset <= 0,
    text: ps.t('上一页', 'Previous'), onclick: () => { s.offset = Math.max(0, s.offset - dist.QPAGE); dist.quality(); }});
  const next = ps.el('button', {type: 'button', id: 'quality-next', disabled: last >= q.total,
    text: ps.t('下一页', 'Next'), onclick: () => { s.offset += dist.QPAGE; dist.quality(); }});
  nav.append(ps.el('div', {class: 'pager'}, prev, ' ',
    ps.el('span', {text: (q.total ? q.offset + 1 : 0) + '–' + last + ' / ' + q.total}), ' ', next));
};

dist.quality = async function () {
  ps.loading = true;
  const s = dist.qstate;
  const q = await ps.get('/api/district/quality?offset=' + s.offset + '&limit=' + dist.QPAGE +
    (s.check ? '&check=' + encodeURIComponent(s.check) : ''));
  dist.qualityNav(q);
  const t = document.getElementById('issues');
  t.textContent = '';
  t.append(ps.el('thead', {}, ps.el('tr', {}, ...[['检查项', 'Check'], ['记录', 'Record'], ['类别', 'Kind'],
    ['单位', 'Unit'], ['说明', 'Detail']].map(h => ps.el('th', {text: ps.t(h[0], h[1])})))));
  const b = ps.el('tbody');
  for (const i of q.issues) {
    const c = dist.CHECKS[i.check] || [i.check, i.check];
    const href = '/record.html?id=' + encodeURIComponent(i.record_id);
    b.append(ps.el('tr', {'data-check': i.check}, ps.el('td', {text: ps.t(c[0], c[1])}),
      ps.el('td', {}, ps.el('a', {href, class: 'record-link', text: i.record_id})), ps.el('td', {text: i.kind}),
      ps.el('td', {text: i.orgunit + ' ' + i.orgunit_name}), ps.el('td', {text: i.detail})));
  }
  t.append(b);
  ps.status(ps.t('共 ' + q.total + ' 个问题', q.total + ' issue(s)'));
  ps.loading = false;
};

/* ---- monthly close ------------------------------------------------------------------ */

dist.close = async function () {
  const m = dist.month();
  dist.monthPicker(m);
  ps.loading = true;
  const d = await ps.get('/api/district/close?month=' + m);
  dist.closeRender(d);
  ps.loading = false;
};

dist.closeAct = async function (orgunit, action, note) {
  try {
    ps.loading = true;
    const r = await ps.post('/api/district/close', {month: dist.month(), orgunit, action, note: note || ''});
    const s = r.rows[0];
    ps.status(s.name + '：' + dist.state(s.state));
    const d = await ps.get('/api/district/close?month=' + dist.month());
    dist.closeRender(d);
  } catch (e) { ps.fail(e); }
  ps.loading = false;
};

dist.closeRender = function (d) {
  const admin = d.role === 'admin', town = d.role === 'township';
  const t = document.getElementById('close-table');
  t.textContent = '';
  t.append(ps.el('thead', {}, ps.el('tr', {}, ...[['镇街', 'Township'], ['状态', 'State'], ['操作人', 'By'],
    ['时间', 'When'], ['说明', 'Note'], ['操作', 'Action']].map(h => ps.el('th', {text: ps.t(h[0], h[1])})))));
  const b = ps.el('tbody');
  const notice = document.getElementById('returned-note');
  if (notice) { notice.hidden = true; notice.textContent = ''; }
  for (const r of d.rows) {
    const act = ps.el('td', {class: 'noprint'});
    if (admin || town) {
      if (r.state === '' || r.state === 'returned' || r.state === 'submitted')
        act.append(ps.el('button', {type: 'button', class: 'submit', text: ps.t('上报', 'Submit'),
          onclick: () => dist.closeAct(r.orgunit, 'submit')}));
    }
    if (admin && (r.state === 'submitted' || r.state === 'approved')) {
      const note = ps.el('input', {class: 'note', size: 24});
      note.placeholder = ps.t('说明（退回时必填）', 'note (required to return)');
      act.append(note);
      if (r.state === 'submitted')
        act.append(ps.el('button', {type: 'button', class: 'approve', text: ps.t('批准', 'Approve'),
          onclick: () => dist.closeAct(r.orgunit, 'approve', note.value)}));
      if (r.state === 'submitted' || r.state === 'approved')
        act.append(ps.el('button', {type: 'button', class: 'return', text: ps.t('退回', 'Return'),
          onclick: () => {
            if (!note.value.trim()) { ps.status(ps.t('退回时请填写说明', 'A return needs a note'), true); note.focus(); return; }
            dist.closeAct(r.orgunit, 'return', note.value);
          }}));
    }
    b.append(ps.el('tr', {'data-code': r.orgunit, 'data-state': r.state}, ps.el('td', {text: r.orgunit + ' ' + r.name}),
      ps.el('td', {class: 'state-' + (r.state || 'open'), text: dist.state(r.state)}), ps.el('td', {text: r.by}),
      ps.el('td', {text: dist.when(r.at_ms)}), ps.el('td', {class: 'note-text', text: r.note}), act));
    if (town && r.state === 'returned' && notice) {
      notice.hidden = false;
      notice.textContent = ps.t('区里退回了 ' + d.month + ' 的月报，说明：', 'The district returned ' + d.month + ' with this note: ') + r.note;
    }
  }
  t.append(b);
};

/* ---- node status ---------------------------------------------------------------------- */

dist.nodes = async function () {
  ps.loading = true;
  const d = await ps.get('/api/district/nodes');
  document.getElementById('nodes-head').textContent = ps.t('服务器序号 ' + d.head + '；未解决冲突 ' + d.conflicts_open + ' 个；' + d.nodes.length + ' 个节点同步过',
    'Server head ' + d.head + '; ' + d.conflicts_open + ' open conflict(s); ' + d.nodes.length + ' node(s) have synced');
  const t = document.getElementById('nodes');
  t.textContent = '';
  t.append(ps.el('thead', {}, ps.el('tr', {}, ...[['名称', 'Name'], ['角色', 'Role'], ['单位', 'Unit'], ['最近同步', 'Last seen'],
    ['落后', 'Behind'], ['未解决冲突', 'Open conflicts'], ['节点', 'Node']].map(h => ps.el('th', {text: ps.t(h[0], h[1])})))));
  const b = ps.el('tbody');
  for (const n of d.nodes)
    b.append(ps.el('tr', {class: n.behind > 0 ? 'behind' : ''}, ps.el('td', {text: n.name}), ps.el('td', {text: n.role}),
      ps.el('td', {text: n.orgunit}), ps.el('td', {text: dist.when(n.last_seen_ms)}), ps.el('td', {class: 'num', text: String(n.behind)}),
      ps.el('td', {class: 'num', text: String(n.conflicts_open)}), ps.el('td', {class: 'mono', text: n.node})));
  t.append(b);
  ps.loading = false;
};

ps.start(async () => {
  const page = {dashboard: dist.dashboard, report: dist.report, quality: dist.quality, close: dist.close,
    nodes: dist.nodes}[document.body.dataset.page];
  try { await page(); } finally { ps.loading = false; }
});
