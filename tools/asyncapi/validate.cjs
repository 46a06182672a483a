// Parse an AsyncAPI document with the AsyncAPI project's own parser and print what it reports.
// Usage: node validate.cjs FILE  ->  one JSON line {errors, warnings, diagnostics}; exit 1 on any error.
"use strict";
const fs = require("node:fs");
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

async function main(file) {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, "utf8"), { source: file });
  const report = diagnostics.map((d) => ({
    severity: DiagnosticSeverity[d.severity] ?? d.severity,
    code: d.code,
    message: d.message,
    path: d.path.join("/"),
  }));
  const errors = report.filter((d) => d.severity === "Error").length;
  const warnings = report.filter((d) => d.severity === "Warning").length;
  const parsed = document !== undefined;
  const channels = parsed ? document.channels().length : 0;
  const messages = parsed ? document.allMessages().length : 0;
  console.log(JSON.stringify({ parsed, errors, warnings, channels, messages, diagnostics: report }));
  process.exit(parsed && errors === 0 ? 0 : 1);
}

main(process.argv[2]).catch((error) => {
  console.error(error);
  process.exit(2);
});
