// Terminal text (app logs, model output) made safe for the page: SGR colour
// codes become spans with classes (the CSP forbids inline styles); every
// other control (OSC, cursor moves, clears, C0 and C1 bytes, bidi
// overrides) is shown as a visible escape and never acts.

import { el } from "./dom.js";

const SGR_ATTRS = { 1: "bold", 2: "dim", 3: "italic", 4: "underline" };
const SGR_OFF = { 22: ["bold", "dim"], 23: ["italic"], 24: ["underline"] };
/** Longest escape sequence waited for across two chunks of a stream. */
const ESC_CARRY = 64;

/** A renderer that keeps the colour state and any escape cut in two
 * between the chunks of one stream. */
export function terminal() {
  const sgr = { fg: null, bg: null, attrs: new Set() };
  let carry = "";
  const visible = (text) => el("span", { className: "esc", textContent: text, title: "control sequence, not run" });
  const picture = (ch) => {
    const c = ch.codePointAt(0);
    if (c < 0x20) return String.fromCodePoint(0x2400 + c); // ␛, ␇, ␈ …
    if (c === 0x7f) return "\u2421";
    return `<U+${c.toString(16).toUpperCase().padStart(4, "0")}>`;
  };
  const applySgr = (params) => {
    const codes = params === "" ? [0] : params.split(";").map((p) => (p === "" ? 0 : Number(p)));
    for (let i = 0; i < codes.length; i++) {
      const n = codes[i];
      if (n === 0) {
        sgr.fg = null;
        sgr.bg = null;
        sgr.attrs.clear();
      } else if (SGR_ATTRS[n]) sgr.attrs.add(SGR_ATTRS[n]);
      else if (SGR_OFF[n]) for (const a of SGR_OFF[n]) sgr.attrs.delete(a);
      else if (n >= 30 && n <= 37) sgr.fg = n - 30;
      else if (n >= 90 && n <= 97) sgr.fg = n - 90 + 8;
      else if (n === 39) sgr.fg = null;
      else if (n >= 40 && n <= 47) sgr.bg = n - 40;
      else if (n >= 100 && n <= 107) sgr.bg = n - 100 + 8;
      else if (n === 49) sgr.bg = null;
      else if (n === 38 || n === 48) {
        // 256 colours or RGB: dropped, their arguments skipped.
        i += codes[i + 1] === 5 ? 2 : codes[i + 1] === 2 ? 4 : 1;
      }
    }
  };
  const span = (text) => {
    const classes = [...sgr.attrs].map((a) => `sgr-${a}`);
    if (sgr.fg !== null) classes.push(`sgr-fg-${sgr.fg}`);
    if (sgr.bg !== null) classes.push(`sgr-bg-${sgr.bg}`);
    return classes.length ? el("span", { className: classes.join(" "), textContent: text }) : document.createTextNode(text);
  };
  // Controls: C0 but tab and newline, DEL, C1, and the bidi overrides and isolates.
  const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
  return {
    /** The nodes for the next chunk of the stream; `colour` false drops SGR. */
    render(chunk, colour = true) {
      const text = carry + chunk;
      carry = "";
      const out = [];
      let plain = "";
      const flush = () => {
        if (plain) out.push(colour ? span(plain) : document.createTextNode(plain));
        plain = "";
      };
      let i = 0;
      while (i < text.length) {
        const ch = text[i];
        if (!CONTROL.test(ch)) {
          plain += ch;
          i += 1;
          continue;
        }
        if (ch === "\r" && text[i + 1] === "\n") {
          i += 1; // CRLF is a line end
          continue;
        }
        if (ch === "\u001b" && (text[i + 1] === "[" || i + 1 === text.length)) {
          const m = /^\u001b\[([0-9;:<=>?]*)([ -\/]*)([@-~])/.exec(text.slice(i, i + ESC_CARRY));
          if (!m) {
            const rest = text.slice(i);
            if (rest.length < ESC_CARRY && /^\u001b(\[[0-9;:<=>?]*[ -\/]*)?$/.test(rest)) {
              flush();
              carry = rest; // cut in two: wait for the next chunk
              return out;
            }
          } else {
            flush();
            if (m[3] === "m" && m[2] === "" && /^[0-9;]*$/.test(m[1])) {
              if (colour) applySgr(m[1]);
            } else {
              out.push(visible(picture("\u001b") + m[0].slice(1)));
            }
            i += m[0].length;
            continue;
          }
        }
        flush();
        out.push(visible(picture(ch)));
        i += 1;
      }
      flush();
      return out;
    },
  };
}
