// Forms: labelled controls, and the API's errors shown where they belong.
// A control's `name` is the API's field path (`email`,
// `strategy.quote_amount`), so an error naming a field lands next to that
// control (`aria-invalid`, `aria-describedby`); any other error goes to
// the form's `role="alert"` region at its top.

import { h, uid } from './dom.js';
import { ApiError } from './api.js';

/**
 * A labelled control. `type` is an input type, `select` (with `options`:
 * `[value, label]` pairs) or `textarea`. Other properties become the
 * control's attributes.
 */
export function field({ label, name, type = 'text', hint, options, testid, value, ...attrs }) {
  const id = uid(`f-${name.replace(/[^a-z0-9]/gi, '-')}`);
  const hintId = hint ? `${id}-hint` : null;
  const common = {
    id,
    name,
    'aria-describedby': hintId,
    testid: testid || `input-${name}`,
    ...attrs,
  };
  let control;
  if (type === 'select') {
    control = h(
      'select',
      common,
      (options || []).map(([optionValue, optionLabel]) =>
        h('option', { value: optionValue, selected: String(optionValue) === String(value ?? '') }, optionLabel),
      ),
    );
  } else if (type === 'textarea') {
    control = h('textarea', { ...common, rows: attrs.rows || 4 });
    if (value !== undefined) control.value = value;
  } else {
    control = h('input', { ...common, type, value });
  }
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    control,
    h('p', { class: 'field-error', id: `${id}-error`, hidden: true }),
  );
}

/** A checkbox with its label after it. */
export function checkbox({ label, name, checked, testid, ...attrs }) {
  const id = uid(`f-${name}`);
  return h(
    'div',
    { class: 'field field-check' },
    h('input', { id, name, type: 'checkbox', checked, testid: testid || `input-${name}`, ...attrs }),
    h('label', { for: id }, label),
    h('p', { class: 'field-error', id: `${id}-error`, hidden: true }),
  );
}

/**
 * A form whose submit runs `onSubmit(form)` with the submit button
 * disabled and the errors shown. `aliases` maps an API field name to a
 * control name where they differ. Resolves `onSubmit`'s result.
 */
export function form({ label, testid, onSubmit, submitLabel, children, aliases = {}, className }) {
  const alert = h('div', { class: 'form-alert', role: 'alert', testid: `${testid}-alert` });
  const submit = h('button', { type: 'submit', class: 'primary', testid: `${testid}-submit` }, submitLabel);
  const element = h(
    'form',
    { 'aria-label': label, testid, novalidate: true, class: ['form', className] },
    alert,
    children,
    h('div', { class: 'actions' }, submit),
  );
  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    await runAction(element, submit, () => onSubmit(element), aliases);
  });
  return element;
}

/** Runs `action` for a form with `button` disabled, showing its errors. */
export async function runAction(formElement, button, action, aliases = {}) {
  if (button.disabled) return undefined;
  clearErrors(formElement);
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await action();
  } catch (error) {
    showError(formElement, error, aliases);
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** Clears every error the form shows. */
export function clearErrors(formElement) {
  for (const control of formElement.querySelectorAll('[aria-invalid="true"]')) {
    control.removeAttribute('aria-invalid');
    const describedBy = (control.getAttribute('aria-describedby') || '')
      .split(' ')
      .filter((id) => id && !id.endsWith('-error'));
    if (describedBy.length) control.setAttribute('aria-describedby', describedBy.join(' '));
    else control.removeAttribute('aria-describedby');
  }
  for (const message of formElement.querySelectorAll('.field-error')) {
    message.textContent = '';
    message.hidden = true;
  }
  const alert = formElement.querySelector('.form-alert');
  if (alert) alert.replaceChildren();
}

/** Shows `error` next to the control it names, or in the form's alert. */
export function showError(formElement, error, aliases = {}) {
  const fieldName = error instanceof ApiError && error.field ? aliases[error.field] || error.field : null;
  const control = fieldName ? controlNamed(formElement, fieldName) : null;
  if (control) {
    const message = document.getElementById(`${control.id}-error`);
    message.textContent = error.reason || error.message;
    message.hidden = false;
    control.setAttribute('aria-invalid', 'true');
    const describedBy = new Set((control.getAttribute('aria-describedby') || '').split(' ').filter(Boolean));
    describedBy.add(message.id);
    control.setAttribute('aria-describedby', [...describedBy].join(' '));
    control.focus();
    return;
  }
  alertIn(formElement, messageOf(error));
}

/** Puts a message in the form's alert region. */
export function alertIn(formElement, text) {
  const alert = formElement.querySelector('.form-alert');
  if (alert) alert.replaceChildren(h('p', {}, text));
}

function controlNamed(formElement, name) {
  for (const control of formElement.elements) {
    if (control.name === name && !control.disabled && control.id) return control;
  }
  return null;
}

/** What to tell a person about a failure. */
export function messageOf(error) {
  if (error instanceof ApiError) {
    const wait = error.retryAfter ? ` (retry in ${error.retryAfter} s)` : '';
    return `${error.message}${wait}`;
  }
  return error && error.message ? error.message : String(error);
}

/** The trimmed text of a named control, or undefined when empty. */
export function valueOf(formElement, name) {
  const control = formElement.elements.namedItem(name);
  if (!control) return undefined;
  const value = typeof control.value === 'string' ? control.value.trim() : control.value;
  return value === '' ? undefined : value;
}
