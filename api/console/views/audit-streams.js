// Browse the log for auditors: one aggregate's events, with their hashes,
// straight from the log, and its state folded from them as of a time or a
// sequence (GET /api/v1/audit/streams/{type}/{id}/events and /state).

import { h, replace } from '../dom.js';
import { request, segment } from '../api.js';
import { field, form, valueOf, showError } from '../forms.js';
import { localToRfc3339, short, time } from '../format.js';
import { heading, section, table, loading, failure, facts, subnav, AUDIT_TABS } from '../ui.js';

export const AGGREGATE_TYPES = ['User', 'ExchangeKey', 'Bot', 'Portfolio', 'SupportTicket', 'Notification'];

export async function render({ main, query, signal, navigate }) {
  heading(main, 'Audit: streams', 'An aggregate’s events as the log holds them, and its state as of a time or a sequence.');
  main.append(subnav('Audit', AUDIT_TABS, '/audit/streams'));
  const asked = {
    type: query.get('type') || 'User',
    id: query.get('id') || '',
    at_sequence: query.get('at_sequence') || undefined,
    as_of: query.get('as_of') || undefined,
    highlight: query.get('highlight') || undefined,
  };
  const point = asked.at_sequence !== undefined ? 'sequence' : asked.as_of ? 'time' : 'end';
  const streamForm = form({
    label: 'Choose a stream',
    testid: 'stream-form',
    submitLabel: 'Show',
    className: 'inline',
    aliases: { aggregate_type: 'type' },
    children: [
      field({ label: 'Aggregate type', name: 'type', type: 'select', value: asked.type, options: AGGREGATE_TYPES.map((t) => [t, t]) }),
      field({ label: 'Aggregate id', name: 'id', value: asked.id, autocomplete: 'off', spellcheck: 'false', required: true }),
      field({
        label: 'Up to',
        name: 'point',
        type: 'select',
        value: point,
        options: [
          ['end', 'The latest event'],
          ['sequence', 'A sequence'],
          ['time', 'A time'],
        ],
      }),
      field({ label: 'Sequence', name: 'at_sequence', type: 'number', min: 0, step: 1, value: asked.at_sequence }),
      field({ label: 'Time', name: 'as_of', type: 'datetime-local', step: 1, value: asked.as_of ? toLocalInput(asked.as_of) : undefined }),
    ],
    onSubmit: async (element) => {
      const params = new URLSearchParams();
      params.set('type', valueOf(element, 'type'));
      params.set('id', valueOf(element, 'id') || '');
      const chosen = valueOf(element, 'point');
      if (chosen === 'sequence') params.set('at_sequence', valueOf(element, 'at_sequence') || '');
      if (chosen === 'time') params.set('as_of', localToRfc3339(valueOf(element, 'as_of')) || '');
      navigate(`/audit/streams?${params}`);
    },
  });
  const pointControl = streamForm.elements.namedItem('point');
  const togglePoint = () => {
    streamForm.elements.namedItem('at_sequence').closest('.field').hidden = pointControl.value !== 'sequence';
    streamForm.elements.namedItem('as_of').closest('.field').hidden = pointControl.value !== 'time';
  };
  pointControl.addEventListener('change', togglePoint);
  togglePoint();
  main.append(streamForm);
  if (!asked.id) return;

  const stateBody = section(main, stateTitle(asked), { testid: 'stream-state' });
  const eventsBody = section(main, 'Events', { testid: 'stream-events' });
  stateBody.append(loading());
  eventsBody.append(loading());
  const base = `/audit/streams/${segment(asked.type)}/${segment(asked.id)}`;
  const pointQuery = { at_sequence: asked.at_sequence, as_of: asked.as_of };
  const [events, state] = await Promise.allSettled([
    request('GET', `${base}/events`, { query: pointQuery, signal }),
    request('GET', `${base}/state`, { query: pointQuery, signal }),
  ]);
  if (signal.aborted) return;
  if (state.status === 'fulfilled') {
    const s = state.value;
    replace(
      stateBody,
      facts([
        ['Stream', `${s.aggregate_type}/${s.aggregate_id}`, 'state-stream'],
        ['Folded up to sequence', String(s.sequence), 'state-sequence'],
        ['Events folded', String(s.events.length), 'state-event-count'],
      ]),
      h('h3', {}, 'State'),
      json(s.state, 'state-json'),
    );
  } else {
    replace(stateBody, failure(state.reason));
    showError(streamForm, state.reason, { aggregate_type: 'type' });
  }
  if (events.status === 'fulfilled') {
    replace(eventsBody, eventsTable(events.value.events, asked.highlight));
  } else {
    replace(eventsBody, failure(events.reason));
  }
}

function stateTitle(asked) {
  if (asked.at_sequence !== undefined) return `State as of sequence ${asked.at_sequence}`;
  if (asked.as_of) return `State as of ${time(asked.as_of)}`;
  return 'State now';
}

function eventsTable(events, highlight) {
  return table({
    caption: 'Events of the stream in sequence order',
    testid: 'audit-events',
    rowTestid: 'audit-event',
    empty: 'No events up to that point.',
    rows: events,
    rowKey: (e) => e.sequence,
    columns: [
      ['Seq', (e) => h('span', { class: String(e.sequence) === highlight ? 'highlight' : null, testid: 'event-sequence' }, String(e.sequence)), 'num'],
      ['Type', (e) => h('span', { testid: 'event-type' }, `${e.event_type} v${e.event_version}`)],
      ['Global position', (e) => String(e.global_position), 'num'],
      ['Recorded', (e) => time(e.recorded_at)],
      ['Hash', (e) => h('code', { title: e.hash }, short(e.hash, 12))],
      ['Previous hash', (e) => h('code', { title: e.prev_hash }, short(e.prev_hash, 12))],
      [
        'Content',
        (e) =>
          h(
            'details',
            {},
            h('summary', {}, 'Payload and metadata'),
            h('p', { class: 'small' }, 'Event id ', h('code', {}, e.event_id)),
            json(e.payload),
            json(e.metadata),
          ),
      ],
    ],
  });
}

/** JSON shown as text (never as markup). */
function json(value, testid) {
  return h('pre', { class: 'json', testid, tabindex: '0' }, JSON.stringify(value, null, 2));
}

function toLocalInput(rfc3339) {
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return undefined;
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
