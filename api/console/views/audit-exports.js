// Signed audit exports: download a user's report (as a file, from a Blob
// URL), and verify a report, the one just downloaded or a file picked
// from disk (POST /api/v1/audit/verify-export), showing the verdict.

import { h, replace } from '../dom.js';
import { ApiError, request, segment } from '../api.js';
import { field, form, valueOf, runAction } from '../forms.js';
import { localToRfc3339 } from '../format.js';
import { heading, section, facts, subnav, AUDIT_TABS } from '../ui.js';

export async function render({ main, query, signal }) {
  heading(main, 'Audit: signed exports', 'A user’s events as a report signed with the service’s Ed25519 key, and its verification.');
  main.append(subnav('Audit', AUDIT_TABS, '/audit/exports'));
  const urls = [];
  signal.addEventListener('abort', () => urls.forEach((url) => URL.revokeObjectURL(url)), { once: true });
  let lastReport = null;

  const verdictBody = h('div', { testid: 'export-result', 'aria-live': 'polite' });
  const downloaded = h('div', { testid: 'export-downloaded' });

  const exportBody = section(main, 'Export a user’s report', { testid: 'export' });
  exportBody.append(
    form({
      label: 'Export a user’s signed report',
      testid: 'export-form',
      submitLabel: 'Download signed export',
      children: [
        field({ label: 'User id', name: 'user_id', value: query.get('user') || undefined, autocomplete: 'off', spellcheck: 'false', required: true }),
        field({ label: 'Events recorded from (optional)', name: 'from', type: 'datetime-local', step: 1 }),
        field({ label: 'Events recorded to (optional)', name: 'to', type: 'datetime-local', step: 1 }),
      ],
      onSubmit: async (element) => {
        const userId = valueOf(element, 'user_id') || '';
        const body = {};
        const from = localToRfc3339(valueOf(element, 'from'));
        const to = localToRfc3339(valueOf(element, 'to'));
        if (from) body.from = from;
        if (to) body.to = to;
        // The exact bytes the service sent are what is saved and verified.
        const text = await request('POST', `/audit/users/${segment(userId)}/export`, { body, text: true });
        lastReport = text;
        const name = `muckard-audit-${userId.replace(/[^A-Za-z0-9-]/g, '')}-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.json`;
        const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
        urls.push(url);
        const link = h('a', { href: url, download: name, testid: 'export-download' }, `Save ${name} again`);
        const verifyIt = h('button', { type: 'button', class: 'primary', testid: 'verify-downloaded' }, 'Verify this export');
        verifyIt.addEventListener('click', () => runAction(verifyForm, verifyIt, () => verify(lastReport, 'the export just downloaded')));
        replace(downloaded, h('p', { class: 'alert success', role: 'status' }, `Downloaded ${name}.`), h('div', { class: 'actions' }, verifyIt, link));
        link.click();
      },
    }),
    downloaded,
  );

  const verifySection = section(main, 'Verify a report', { testid: 'verify-export' });
  const fileInput = h('input', { type: 'file', id: 'report-file', name: 'report', accept: '.json,application/json', testid: 'report-file' });
  const verifyForm = form({
    label: 'Verify a report file',
    testid: 'verify-file-form',
    submitLabel: 'Verify the file',
    children: [
      h('div', { class: 'field' }, h('label', { for: 'report-file' }, 'A report file you downloaded'), fileInput),
    ],
    onSubmit: async (element) => {
      const file = fileInput.files && fileInput.files[0];
      if (!file) {
        element.querySelector('.form-alert').replaceChildren(h('p', {}, 'Choose a report file first.'));
        return;
      }
      await verify(await file.text(), file.name);
    },
  });
  verifySection.append(verifyForm, verdictBody);

  async function verify(text, what) {
    replace(verdictBody, h('p', { class: 'loading' }, `Verifying ${what}…`));
    let check;
    try {
      check = await request('POST', '/audit/verify-export', { rawBody: text });
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) {
        showVerdict({ clean: false, notAReport: error.reason || error.message }, what);
        return;
      }
      verdictBody.replaceChildren();
      throw error;
    }
    showVerdict(check, what);
  }

  function showVerdict(check, what) {
    if (check.notAReport) {
      replace(
        verdictBody,
        h('p', { class: 'alert error', testid: 'export-verdict', dataset: { valid: 'false' } }, `Invalid: ${what} is not an audit report (${check.notAReport}).`),
      );
      return;
    }
    replace(
      verdictBody,
      check.clean
        ? h('p', { class: 'alert success', testid: 'export-verdict', dataset: { valid: 'true' } }, `Valid: ${what} is signed by the service, its digest matches, and the log still holds what it reports.`)
        : h('p', { class: 'alert error', testid: 'export-verdict', dataset: { valid: 'false' } }, `Invalid: ${what} does not verify.`),
      facts([
        ['Digest matches', check.digest_matches ? 'yes' : 'no', 'export-digest'],
        ['Signature', check.signature, 'export-signature'],
        ['Events checked', String(check.events_checked)],
        ['Streams checked', String(check.streams_checked)],
      ]),
      check.problems && check.problems.length
        ? h('ul', { class: 'error-list', testid: 'export-problems' }, check.problems.map((p) => h('li', {}, p)))
        : null,
    );
  }
}
