// Small DOM helpers: elements are built with textContent only (event notes, mismatch URLs and
// headers come from clients and upstreams, so nothing is ever parsed as HTML), and formatting.

/** `h('td', { class: 'num' }, 'text', child)`; attributes starting with `on` become listeners. */
export function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value)
    else if (name === 'dataset') Object.assign(el.dataset, value)
    else el.setAttribute(name, value === true ? '' : String(value))
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false).map((c) => typeof c === 'object' ? c : String(c)))
  return el
}

/** Replaces an element's children. */
export function fill (el, ...children) {
  el.replaceChildren()
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false).map((c) => typeof c === 'object' ? c : String(c)))
}

export function $ (selector) {
  return document.querySelector(selector)
}

/** `12:03:04` in local time, from an ISO string or epoch ms. */
export function clock (at) {
  if (at === null || at === undefined) return '–'
  const d = new Date(at)
  return Number.isNaN(d.getTime()) ? String(at) : d.toLocaleTimeString([], { hour12: false })
}

export function percent (value) {
  return value === null || value === undefined ? '–' : `${Number(value.toFixed(2))} %`
}

/** A measured value with three significant digits. */
export function number (value, digits = 3) {
  if (value === null || value === undefined) return '–'
  if (typeof value !== 'number') return String(value)
  return String(Number(value.toPrecision(digits)))
}
