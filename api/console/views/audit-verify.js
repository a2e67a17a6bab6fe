// Verify the log (POST /api/v1/audit/verify): every stream's hash chain,
// contiguous sequences, unique ids, each broken row named.

import { h, replace } from '../dom.js';
import { request } from '../api.js';
import { field, form, valueOf } from '../forms.js';
import { localToRfc3339, short } from '../format.js';
import { heading, section, table, facts, subnav, AUDIT_TABS } from '../ui.js';

export async function render({ main }) {
  heading(main, 'Audit: verify the log', 'Checks every row’s hash, its link to the row before it, contiguous sequences and unique ids.');
  main.append(subnav('Audit', AUDIT_TABS, '/audit/verify'));
  const resultBody = h('div', { testid: 'verify-result', 'aria-live': 'polite' });
  main.append(
    form({
      label: 'Verify the log',
      testid: 'verify-log-form',
      submitLabel: 'Run verification',
      className: 'inline',
      children: [
        field({ label: 'Recorded from (optional)', name: 'from', type: 'datetime-local', step: 1 }),
        field({ label: 'Recorded to (optional)', name: 'to', type: 'datetime-local', step: 1 }),
      ],
      onSubmit: async (element) => {
        replace(resultBody, h('p', { class: 'loading' }, 'Verifying…'));
        const body = {};
        const from = localToRfc3339(valueOf(element, 'from'));
        const to = localToRfc3339(valueOf(element, 'to'));
        if (from) body.from = from;
        if (to) body.to = to;
        try {
          const report = await request('POST', '/audit/verify', { body });
          showReport(resultBody, report);
        } catch (error) {
          resultBody.replaceChildren();
          throw error;
        }
      },
    }),
    resultBody,
  );
}

function showReport(container, report) {
  const verdict = report.clean
    ? h('p', { class: 'alert success', testid: 'verify-verdict', dataset: { clean: 'true' } }, 'The log is intact: no broken row.')
    : h(
        'p',
        { class: 'alert error', testid: 'verify-verdict', dataset: { clean: 'false' } },
        `The log is broken: ${report.broken_rows.length} ${report.broken_rows.length === 1 ? 'row' : 'rows'} found wrong.`,
      );
  const summary = facts([
    ['Events checked', String(report.events_checked), 'events-checked'],
    ['Streams checked', String(report.streams_checked), 'streams-checked'],
    ['Took', `${Number(report.seconds).toFixed(2)} s`],
  ]);
  const body = h('div', {});
  replace(container, verdict, summary, body);
  if (!report.clean) {
    section(body, 'Broken rows', { testid: 'broken-rows' }).append(
      table({
        caption: 'Rows found wrong, in stream order',
        testid: 'broken-rows-table',
        rowTestid: 'broken-row',
        rows: report.broken_rows,
        columns: [
          ['Aggregate type', (r) => h('span', { testid: 'broken-type' }, r.aggregate_type)],
          ['Aggregate id', (r) => h('code', { testid: 'broken-id' }, r.aggregate_id)],
          ['Sequence', (r) => h('span', { testid: 'broken-sequence' }, String(r.sequence)), 'num'],
          ['Global position', (r) => h('span', { testid: 'broken-position' }, r.global_position ?? '—'), 'num'],
          ['Event id', (r) => (r.event_id ? h('code', { title: r.event_id }, short(r.event_id)) : '—')],
          ['Problem', (r) => h('span', { testid: 'broken-problem' }, problemInWords(r))],
          [
            'Stream',
            (r) =>
              h(
                'a',
                {
                  href: `#/audit/streams?${new URLSearchParams({ type: r.aggregate_type, id: r.aggregate_id, highlight: String(r.sequence) })}`,
                },
                'Open',
              ),
          ],
        ],
      }),
    );
  }
}

/** A broken row's problem in words, from its `kind` and details. */
export function problemInWords(row) {
  const p = row.problem || {};
  const other = () => `${p.other_aggregate_type}/${p.other_aggregate_id} sequence ${p.other_sequence}`;
  switch (p.kind) {
    case 'hash_mismatch':
      return `Its content does not match its hash: it was changed after it was written (stored ${short(p.stored, 12)}, recomputed ${short(p.recomputed, 12)}).`;
    case 'broken_link':
      return `Its previous-hash link (${short(p.prev_hash, 12)}) is not the previous row’s hash (${short(p.expected, 12)}): a row before it was replaced or the link forged.`;
    case 'gap':
      return p.missing_from === p.missing_to
        ? `Sequence ${p.missing_from} is missing (deleted) before this row.`
        : `Sequences ${p.missing_from} to ${p.missing_to} are missing (deleted) before this row.`;
    case 'duplicate_sequence':
      return 'Two rows of the stream carry this sequence.';
    case 'duplicate_event_id':
      return `Its event id is also used by ${other()}.`;
    case 'duplicate_global_position':
      return `Its global position is also used by ${other()}.`;
    case 'out_of_order':
      return `Its global position is not after the previous row’s (${p.previous_global_position}).`;
    case 'truncated':
      return `The log ends at sequence ${p.last_sequence}, but a snapshot was taken at sequence ${p.snapshot_sequence}: the newest rows were deleted.`;
    default:
      return row.description || `Problem: ${String(p.kind || 'unknown')}.`;
  }
}
