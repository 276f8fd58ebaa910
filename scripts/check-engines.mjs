// Exits 1 with a one-line reason when this Node.js is older than a package.json's "engines.node"
// (a ">=MAJOR[.MINOR[.PATCH]]" range, the only form this project declares).
//   node scripts/check-engines.mjs tests/e2e/package.json
// npm only warns about engines; run-tests.sh calls this so that a too-old Node.js fails a suite
// with the reason instead of at some import deep inside a dependency.
import fs from 'node:fs';

const file = process.argv[2];
const range = JSON.parse(fs.readFileSync(file, 'utf8')).engines?.node;
if (!range) {
  console.log(`${file} declares no engines.node`);
  process.exit(1);
}
const m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(range.trim());
if (!m) {
  console.log(`${file}: engines.node "${range}" is not of the form >=X.Y.Z`);
  process.exit(1);
}
const want = [m[1], m[2] ?? 0, m[3] ?? 0].map(Number);
const have = process.versions.node.split('.').map(Number);
for (let i = 0; i < 3; i++) {
  if (have[i] > want[i]) break;
  if (have[i] < want[i]) {
    console.log(`Node.js ${process.versions.node} is older than ${file} needs (${range}): apt-get install nodejs (Debian 12: 18.x)`);
    process.exit(1);
  }
}
