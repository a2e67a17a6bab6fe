// Parses an AsyncAPI document with the official parser (@asyncapi/parser),
// resolving its $refs from where it was read: node validate-asyncapi.mjs
// URL|FILE. Prints every diagnostic; exits 1 if any is an error (severity
// 0) or a warning (severity 1), or if the parser made no document.
import { Parser, fromURL, fromFile } from '@asyncapi/parser';

const source = process.argv[2];
if (!source) {
  console.error('usage: node validate-asyncapi.mjs URL|FILE');
  process.exit(2);
}
const parser = new Parser();
const input = /^https?:\/\//.test(source) ? fromURL(parser, source) : fromFile(parser, source);
const { document, diagnostics } = await input.parse();
const names = ['error', 'warning', 'information', 'hint'];
for (const d of diagnostics) {
  console.log(`${names[d.severity] ?? d.severity} ${d.code} at ${d.path.join('.') || '(root)'}: ${d.message}`);
}
const failed = diagnostics.filter((d) => d.severity <= 1);
if (!document || failed.length > 0) {
  console.log(`not valid: ${failed.length} errors or warnings`);
  process.exit(1);
}
const channels = document.channels().length;
const operations = document.operations().length;
const messages = document.components().messages().length;
console.log(`valid AsyncAPI ${document.version()}: ${channels} channels, ${operations} operations, ${messages} messages`);
