// Source code and diffs on the page. Syntax highlighting: a small tokenizer
// per language; tokens become spans whose text is set with textContent.

import { el } from "./dom.js";

const PY_KEYWORDS =
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case";
const PY_BUILTINS =
  "print len range str int float bool list dict set tuple open super self cls isinstance enumerate zip map filter sorted min max sum any all repr type object Exception ValueError KeyError TypeError";
const JS_KEYWORDS =
  "await break case catch class const continue debugger default delete do else export extends finally for function if import in instanceof let new of return static super switch this throw try typeof var void while with yield async true false null undefined";
const words = (s) => new Set(s.split(" "));

const STRING_DQ = /"(?:\\[\s\S]|[^"\\\n])*"?/y;
const STRING_SQ = /'(?:\\[\s\S]|[^'\\\n])*'?/y;
const SPACE = { type: "plain", re: /\s+/y };
const NUMBER = { type: "number", re: /\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?/y };

const HTML_TAG = {
  rules: [
    SPACE,
    { type: "tag", re: /<\/?[A-Za-z][\w:-]*|\/?>/y },
    { type: "attr", re: /[^\s"'<>/=]+(?=\s*=)/y },
    { type: "string", re: /"[^"]*"?|'[^']*'?/y },
    { type: "template", re: /\{\{[\s\S]*?(?:\}\}|$)|\{%[\s\S]*?(?:%\}|$)/y },
  ],
};

const LANGS = {
  python: {
    rules: [
      SPACE,
      { type: "comment", re: /#[^\n]*/y },
      {
        type: "string",
        re: /[rRbBuUfF]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\[\s\S]|[^"\\\n])*"?|'(?:\\[\s\S]|[^'\\\n])*'?)/y,
      },
      { type: "decorator", re: /@[A-Za-z_][\w.]*/y },
      NUMBER,
      { type: "word", re: /[A-Za-z_]\w*/y },
    ],
    keywords: words(PY_KEYWORDS),
    builtins: words(PY_BUILTINS),
  },
  js: {
    rules: [
      SPACE,
      { type: "comment", re: /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y },
      { type: "string", re: STRING_DQ },
      { type: "string", re: STRING_SQ },
      { type: "string", re: /`(?:\\[\s\S]|[^`\\])*`?/y },
      NUMBER,
      { type: "word", re: /[A-Za-z_$][\w$]*/y },
    ],
    keywords: words(JS_KEYWORDS),
  },
  css: {
    rules: [
      SPACE,
      { type: "comment", re: /\/\*[\s\S]*?(?:\*\/|$)/y },
      { type: "string", re: STRING_DQ },
      { type: "string", re: STRING_SQ },
      { type: "keyword", re: /@[\w-]+/y },
      { type: "number", re: /#[0-9a-fA-F]{3,8}\b/y },
      { type: "attr", re: /[\w-]+(?=\s*:[^:])/y },
      { type: "number", re: /-?\d*\.?\d+(?:px|em|rem|%|vh|vw|s|ms|fr|ch|deg)?/y },
      { type: "plain", re: /[\w-]+/y },
    ],
  },
  html: {
    rules: [
      SPACE,
      { type: "comment", re: /<!--[\s\S]*?(?:-->|$)|\{#[\s\S]*?(?:#\}|$)/y },
      { type: "template", re: /\{\{[\s\S]*?(?:\}\}|$)|\{%[\s\S]*?(?:%\}|$)/y },
      { type: "keyword", re: /<![A-Za-z][^>]*>?/y },
      { type: "sub", re: /<\/?[A-Za-z][^<>]*>?/y, sub: HTML_TAG },
      { type: "plain", re: /[^<{\s]+/y },
    ],
  },
  markdown: {
    rules: [
      { type: "string", re: /```[\s\S]*?(?:```|$)/y, bol: true },
      { type: "keyword", re: /#{1,6}[ \t][^\n]*/y, bol: true },
      { type: "punct", re: /[ \t]*(?:[-*+]|\d+\.)[ \t]/y, bol: true },
      { type: "comment", re: /> ?[^\n]*/y, bol: true },
      SPACE,
      { type: "string", re: /`[^`\n]*`/y },
      { type: "strong", re: /\*\*[^*\n]+\*\*|__[^_\n]+__/y },
      { type: "em", re: /\*[^*\n]+\*|_[^_\n]+_/y },
      { type: "link", re: /\[[^\]\n]*\]\([^)\n]*\)/y },
      { type: "plain", re: /[^\s`*_[#>]+/y },
    ],
  },
  json: {
    rules: [SPACE, { type: "attr", re: /"(?:\\.|[^"\\\n])*"(?=\s*:)/y }, { type: "string", re: STRING_DQ }, NUMBER, { type: "word", re: /\w+/y }],
    keywords: words("true false null"),
  },
  plain: {
    rules: [
      SPACE,
      { type: "comment", re: /#[^\n]*/y },
      { type: "string", re: STRING_DQ },
      { type: "string", re: STRING_SQ },
      NUMBER,
      { type: "plain", re: /[A-Za-z_][\w.-]*/y },
    ],
  },
};

function langOf(path) {
  const name = path.split("/").pop().toLowerCase();
  const ext = name.includes(".") ? name.split(".").pop() : "";
  return (
    {
      py: "python",
      js: "js",
      mjs: "js",
      cjs: "js",
      ts: "js",
      css: "css",
      html: "html",
      htm: "html",
      jinja: "html",
      j2: "html",
      svg: "html",
      xml: "html",
      md: "markdown",
      markdown: "markdown",
      json: "json",
    }[ext] || "plain"
  );
}

/** [[type or null, text], …] covering `text` exactly. */
function tokenize(text, lang) {
  const out = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push([null, plain]);
    plain = "";
  };
  let i = 0;
  outer: while (i < text.length) {
    for (const rule of lang.rules) {
      if (rule.bol && i > 0 && text[i - 1] !== "\n") continue;
      rule.re.lastIndex = i;
      const m = rule.re.exec(text);
      if (!m || m[0].length === 0) continue;
      const t = m[0];
      let type = rule.type;
      if (type === "word") {
        type = lang.keywords && lang.keywords.has(t) ? "keyword" : lang.builtins && lang.builtins.has(t) ? "builtin" : "plain";
      }
      if (type === "sub") {
        flush();
        out.push(...tokenize(t, rule.sub));
      } else if (type === "plain") {
        plain += t;
      } else {
        flush();
        out.push([type, t]);
      }
      i += t.length;
      continue outer;
    }
    plain += text[i];
    i += 1;
  }
  flush();
  return out;
}

const HIGHLIGHT_LIMIT = 300_000;

/** A code block with line numbers: `path` picks the language. */
export function renderCode(container, path, content) {
  const code = el("code", { className: `lang-${langOf(path)}` });
  if (content.length > HIGHLIGHT_LIMIT) {
    code.textContent = content;
  } else {
    for (const [type, t] of tokenize(content, LANGS[langOf(path)])) {
      code.append(type ? el("span", { className: `tok-${type}`, textContent: t }) : t);
    }
  }
  let lines = content.split("\n").length;
  if (content.endsWith("\n")) lines -= 1;
  const numbers = Array.from({ length: Math.max(lines, 1) }, (_, k) => k + 1).join("\n");
  container.replaceChildren(
    el("pre", { className: "gutter", textContent: numbers, attrs: { "aria-hidden": "true" } }),
    el("pre", { className: "src", tabIndex: 0, attrs: { "aria-label": `Contents of ${path}` } }, code),
  );
}

/** A unified diff, one line per span, coloured by its first character. */
export function renderDiff(pre, unified) {
  pre.replaceChildren();
  if (!unified) {
    pre.append(el("span", { className: "dl ctx", textContent: "The two versions are the same." }));
    return;
  }
  const lines = unified.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) {
    let kind = "ctx";
    if (line.startsWith("+++ ") || line.startsWith("--- ") || line.startsWith("diff ") || line.startsWith("index ")) kind = "file";
    else if (line.startsWith("@@")) kind = "hunk";
    else if (line.startsWith("+")) kind = "add";
    else if (line.startsWith("-")) kind = "del";
    else if (line.startsWith("\\")) kind = "meta";
    pre.append(el("span", { className: `dl ${kind}`, textContent: `${line}\n` }));
  }
}
