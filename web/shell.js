/* shell.js - the page shell of popsync ui: navigation bar, language switch,
 * and the one way pages talk to the server (ps.get / ps.post carry the
 * CSRF token).  Loaded first by every page; no inline script anywhere
 * (the Content-Security-Policy allows only files from this server). */
'use strict';
const ps = {
  session: null,
  zh: true,
  /* t('中文', 'English'): the text in the user's language. */
  t(zh, en) { return ps.zh ? zh : en; },
  async req(method, url, body, raw) {
    const h = {};
    if (method !== 'GET') h['X-CSRF-Token'] = ps.session ? ps.session.csrf : '';
    if (body !== undefined && !raw) h['Content-Type'] = 'application/json';
    for (let i = 0; i < 20; i++) {
      const r = await fetch(url, {method, headers: h, credentials: 'same-origin',
        body: body === undefined ? undefined : (raw ? body : JSON.stringify(body))});
      if (r.status === 503) { ps.status(ps.t('正在同步，请稍候…', 'Syncing, please wait…')); await new Promise(ok => setTimeout(ok, 500)); continue; }
      const ct = r.headers.get('Content-Type') || '';
      const data = ct.startsWith('application/json') ? await r.json() : await r.text();
      if (!r.ok) { const e = new Error((data && data.error) || r.statusText); e.status = r.status; e.data = data; throw e; }
      return data;
    }
    throw new Error(ps.t('服务器忙', 'server busy'));
  },
  get(url) { return ps.req('GET', url); },
  post(url, body) { return ps.req('POST', url, body); },
  postRaw(url, body) { return ps.req('POST', url, body, true); },
  /* el('div', {class: 'x', text: '...'}, child, ...) */
  el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of kids) if (c !== null && c !== undefined) e.append(c);
    return e;
  },
  param(name) { return new URLSearchParams(location.search).get(name); },
  status(msg, bad) {
    const s = document.getElementById('status');
    if (s) { s.textContent = msg || ''; s.className = bad ? 'status bad' : 'status'; }
  },
  fail(e) {
    ps.status((e && e.message) || String(e), true);
    const b = ps.retry(e && e.data), s = document.getElementById('status');
    if (b && s) s.append(' ', b);
  },
  /* The 再试 Try again button for an answer that says the district server
   * has not answered lately (since_ms; docs/ui.md §1): the pages ask it
   * again at once, this one first.  null when the server is not silent. */
  retry(d) {
    if (!d || !d.since_ms) return null;
    return ps.el('button', {type: 'button', id: 'server-retry', class: 'link', text: ps.t('再试', 'Try again'),
      onclick: async () => {
        try { await ps.post('/api/server/retry', {}); location.reload(); } catch (e) { ps.fail(e); }
      }});
  },
  setLang(l) {
    document.cookie = 'popsync_lang=' + l + '; Path=/; SameSite=Strict';
    location.reload();
  },
  /* Fills [data-zh]/[data-en] elements with the text of the language. */
  translate(root) {
    for (const e of (root || document).querySelectorAll('[data-zh]'))
      e.textContent = ps.zh ? e.dataset.zh : e.dataset.en;
    for (const e of (root || document).querySelectorAll('[data-ph-zh]'))
      e.placeholder = ps.zh ? e.dataset.phZh : e.dataset.phEn;
  },
  async start(page) {
    try { ps.session = await ps.get('/api/session'); } catch (e) { document.body.textContent = e.message; return; }
    ps.zh = ps.session.lang === 'zh';
    document.documentElement.lang = ps.zh ? 'zh-CN' : 'en';
    const nav = document.getElementById('nav');
    if (nav) {
      nav.append(ps.el('span', {class: 'brand', text: 'popsync'}));
      for (const n of ps.session.nav) {
        const a = ps.el('a', {href: n.href, text: n.label});
        if (location.pathname === n.href || (location.pathname === '/' && n.href === '/index.html')) a.className = 'here';
        nav.append(a);
      }
      const who = ps.el('span', {class: 'who', text: ps.session.orgunit + ' ' + ps.session.role});
      const sw = ps.el('button', {type: 'button', id: 'lang-switch', class: 'link',
        text: ps.zh ? 'English' : '中文', onclick: () => ps.setLang(ps.zh ? 'en' : 'zh')});
      nav.append(who, sw);
    }
    ps.translate();
    if (page) { try { await page(); } catch (e) { ps.fail(e); } }
  },
};
