/* import.js - CSV/XLSX import: preview (every error by line, nothing
 * stored), then import; the rejected rows to download, fix and import. */
'use strict';
async function send(mode) {
  const f = document.getElementById('file').files[0], kind = document.getElementById('kind').value;
  if (!f) { ps.status(ps.t('请选择文件', 'choose a file'), true); return; }
  ps.status(mode === 'preview' ? ps.t('正在检查…', 'Checking…') : ps.t('正在导入…', 'Importing…'));
  const r = await ps.postRaw('/api/import?mode=' + mode + '&kind=' + kind + '&name=' + encodeURIComponent(f.name), await f.arrayBuffer());
  const s = document.getElementById('summary');
  s.textContent = r.preview
    ? ps.t('共 ' + r.rows + ' 行：可导入 ' + r.imported + '，未变 ' + r.unchanged + '，有错 ' + r.rejected,
           r.rows + ' rows: ' + r.imported + ' would be imported, ' + r.unchanged + ' unchanged, ' + r.rejected + ' with errors')
    : ps.t('已导入 ' + r.imported + ' 行（共 ' + r.rows + ' 行，未变 ' + r.unchanged + '，被拒绝 ' + r.rejected + '）',
           r.imported + ' of ' + r.rows + ' rows imported (' + r.unchanged + ' unchanged, ' + r.rejected + ' rejected)');
  const sh = r.sheet;
  if (sh) s.textContent += ps.t('（读取的是工作表“' + sh.read + '”，第 ' + sh.index + ' 张，共 ' + sh.count + ' 张' +
      (sh.skipped ? '；跳过了没有表头行的 ' + sh.skipped : '') +
      (sh.others ? '；' + sh.others + ' 也有表头行，未导入：请在 Excel 中另存为单独的文件再导入' : '') + '）',
    ' (read sheet "' + sh.read + '", ' + sh.index + ' of ' + sh.count +
      (sh.skipped ? '; skipped, no header row: ' + sh.skipped : '') +
      (sh.others ? '; ' + sh.others + ' have a header row too and were not imported: save each as its own file and import it' : '') + ')');
  const tb = document.querySelector('#errors tbody');
  tb.textContent = '';
  for (const e of r.errors) tb.append(ps.el('tr', {}, ps.el('td', {text: e.line}), ps.el('td', {text: e.label}),
    ps.el('td', {text: e.value}), ps.el('td', {class: 'err', text: e.reason})));
  document.getElementById('errors').hidden = !r.errors.length;
  document.getElementById('rejects').hidden = !r.rejects;
  document.getElementById('import').disabled = !r.preview || r.imported === 0;
  ps.status(r.preview ? ps.t('预览完成，尚未保存', 'Preview done; nothing stored yet') : ps.t('导入完成，同步后送到服务器', 'Imported; the next sync sends it'));
}
ps.start(async () => {
  const sel = document.getElementById('kind');
  for (const [k] of KINDS) sel.append(ps.el('option', {value: k, text: kindLabel(k)}));
  document.querySelector('#errors thead').append(ps.el('tr', {}, ps.el('th', {text: ps.t('行号', 'Line')}),
    ps.el('th', {text: ps.t('字段', 'Field')}), ps.el('th', {text: ps.t('读到的值', 'Value as read')}), ps.el('th', {text: ps.t('原因', 'Reason')})));
  document.getElementById('preview').addEventListener('click', () => send('preview').catch(ps.fail));
  document.getElementById('import').addEventListener('click', () => send('import').catch(ps.fail));
  document.getElementById('file').addEventListener('change', () => { document.getElementById('import').disabled = true; });
});
