// Small DOM helpers. Text is only ever set as text (textContent, text
// nodes), never parsed as HTML.

export const $ = (id) => document.getElementById(id);

/** An element with properties (className, textContent, …), attributes
 * (`attrs`), data attributes (`data`) and children (nodes or strings). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { attrs, data, ...rest } = props || {};
  Object.assign(node, rest);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const [k, v] of Object.entries(data || {})) node.dataset[k] = v;
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

export function show(node, visible) {
  node.hidden = !visible;
}
