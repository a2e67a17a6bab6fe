// The console's one way of building the page: `h(tag, attrs, ...children)`.
// Text is always set with text nodes, never parsed as HTML, because every
// string the API returns may be hostile. Attributes named `on…` are
// refused: listeners are attached with `on` (a function-valued property of
// attrs), and `style` attributes are refused because the page's content
// security policy forbids them (classes do the styling).

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Builds an HTML element. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** Builds an SVG element (the price chart). */
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'on') {
      for (const [type, listener] of Object.entries(value)) element.addEventListener(type, listener);
    } else if (name === 'style' || /^on/i.test(name)) {
      throw new Error(`dom: the attribute ${name} is not allowed (content security policy)`);
    } else if (name === 'class') {
      element.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (name === 'dataset') {
      Object.assign(element.dataset, value);
    } else if (name === 'testid') {
      element.setAttribute('data-testid', value);
    } else if (name === 'value' && 'value' in element && element.namespaceURI !== SVG_NS) {
      element.value = value;
    } else if (name === 'checked' || name === 'selected') {
      element[name] = Boolean(value);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children: nodes, strings (as text), arrays of either, skipping null/false. */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false || child === true) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces the element's children. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

let counter = 0;
/** An id unique in the page, for label/aria wiring. */
export function uid(prefix = 'id') {
  counter += 1;
  return `${prefix}-${counter}`;
}
