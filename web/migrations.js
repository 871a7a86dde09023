/* migrations.js - this place's open migration cases: awaiting its
 * submission or the other place's feedback, with the deadline. */
'use strict';
async function load() {
  const a = document.getElementById('await').value;
  const d = await ps.get('/api/migrations' + (a ? '?await=' + a : ''));
  const tb = document.querySelector('#cases tbody');
  tb.textContent = '';
  d.cases.sort((x, y) => (x.days_left === null ? 1e9 : x.days_left) - (y.days_left === null ? 1e9 : y.days_left));
  for (const c of d.cases) {
    const m = c.migrant || {};
    const left = c.days_left === null ? '?' : c.days_left >= 0 ? ps.t('剩 ' + c.days_left + ' 天', c.days_left + ' days left')
      : ps.t('超期 ' + (-c.days_left) + ' 天', 'overdue ' + (-c.days_left) + ' days');
    tb.append(ps.el('tr', {class: c.days_left !== null && c.days_left < 0 ? 'diff' : ''},
      ps.el('td', {}, ps.el('a', {href: '/record.html?id=' + c.id, text: m.name || ps.t('（无人员信息）', '(person not known here)')})),
      ps.el('td', {text: c.direction === 'inflow' ? ps.t('流入', 'inflow') : ps.t('流出', 'outflow')}),
      ps.el('td', {text: c.other_place_code + ' ' + c.other_place_name}),
      ps.el('td', {text: c.start_date}), ps.el('td', {text: c.submitted_date || '-'}),
      ps.el('td', {text: c.awaiting === 'submission' ? ps.t('待通报', 'awaiting submission') : ps.t('待反馈', 'awaiting feedback')}),
      ps.el('td', {text: c.who_acts === 'this place' ? ps.t('本地办理', 'this place') : ps.t('对方办理', 'the other place')}),
      ps.el('td', {text: c.deadline + (c.urgent ? ps.t('（紧急）', ' (urgent)') : '')}), ps.el('td', {text: left})));
  }
  ps.status(d.cases.length ? '' : ps.t('没有未结的流动人口事项', 'no open migration cases'));
}
ps.start(async () => {
  const sel = document.getElementById('await');
  for (const [v, zh, en] of [['', '全部未结', 'all open'], ['submission', '待通报', 'awaiting submission'], ['feedback', '待反馈', 'awaiting feedback']])
    sel.append(ps.el('option', {value: v, text: ps.t(zh, en)}));
  sel.addEventListener('change', () => load().catch(ps.fail));
  const h = [['人员', 'Person'], ['流向', 'Direction'], ['对方地', 'Other place'], ['开始', 'Start'], ['通报', 'Submitted'],
             ['等待', 'Awaiting'], ['办理方', 'Who acts'], ['期限', 'Deadline'], ['', '']];
  document.querySelector('#cases thead').append(ps.el('tr', {}, ...h.map(([zh, en]) => ps.el('th', {text: ps.t(zh, en)}))));
  await load();
});
