// Validates AsyncAPI documents with the AsyncAPI Initiative's own parser (@asyncapi/parser):
// schema validation, the spec's rules, and every $ref resolved (files beside the document too).
//
//   NODE_PATH=target/tools/node/node_modules node scripts/validators/asyncapi.cjs schemas/asyncapi.yaml
//
// Prints each diagnostic as `file:line:column severity code message`; exits 1 if any is an
// error or a warning, so that a document passes only when the parser has nothing to say about it.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { Parser, fromFile } = require('@asyncapi/parser');

const SEVERITY = ['error', 'warning', 'information', 'hint'];

async function validate(parser, file) {
  const { document, diagnostics } = await fromFile(parser, file).parse();
  let failed = document === undefined;
  for (const diagnostic of diagnostics) {
    const severity = SEVERITY[diagnostic.severity] ?? String(diagnostic.severity);
    const start = diagnostic.range?.start ?? { line: 0, character: 0 };
    const where = diagnostic.path?.length ? ` (at ${diagnostic.path.join('.')})` : '';
    console.log(
      `${file}:${start.line + 1}:${start.character + 1} ${severity} ${diagnostic.code} ${diagnostic.message}${where}`,
    );
    if (diagnostic.severity <= 1) failed = true;
  }
  if (!failed) {
    const channels = document.allChannels().length;
    const messages = document.allMessages().length;
    console.log(`${file}: valid AsyncAPI ${document.version()} (${channels} channels, ${messages} messages)`);
  }
  return !failed;
}

async function main(files) {
  if (files.length === 0) {
    console.error('usage: asyncapi.cjs <document>...');
    return 2;
  }
  const parser = new Parser();
  let ok = true;
  for (const file of files) {
    if (!fs.existsSync(file)) {
      console.error(`${file}: no such file`);
      ok = false;
      continue;
    }
    ok = (await validate(parser, path.resolve(file))) && ok;
  }
  return ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
