// web/ as the server serves it: every module fmp4-player.js loads is a relative .js import of a
// file in web/ that gst/web.gresource.xml compiles into the plugin (else websocketsink answers 404
// and the browser loads nothing), and fmp4-player.js still exports what it always did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEB = path.join(ROOT, 'web');

/** Static imports and re-exports of a module: the specifiers. */
function specifiers(file) {
  const src = fs.readFileSync(file, 'utf8');
  const out = [];
  for (const m of src.matchAll(/^\s*(?:import|export)\s[^'";]*?from\s+['"]([^'"]+)['"]/gm)) out.push(m[1]);
  for (const m of src.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.push(m[1]);
  return out;
}

/** Every module reachable from web/fmp4-player.js, as paths relative to web/. */
function moduleGraph() {
  const seen = new Set();
  const todo = ['fmp4-player.js'];
  const problems = [];
  while (todo.length) {
    const rel = todo.pop();
    if (seen.has(rel)) continue;
    seen.add(rel);
    for (const spec of specifiers(path.join(WEB, rel))) {
      if (!/^\.\.?\//.test(spec) || !spec.endsWith('.js')) {
        problems.push(`${rel}: import "${spec}" is not a relative .js path`);
        continue;
      }
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec));
      if (target.startsWith('..') || !fs.existsSync(path.join(WEB, target))) problems.push(`${rel}: "${spec}" is not a file in web/`);
      else todo.push(target);
    }
  }
  return { modules: [...seen].sort(), problems };
}

test('every module is a relative .js import of a file in web/', () => {
  const { modules, problems } = moduleGraph();
  assert.deepEqual(problems, []);
  assert.ok(modules.length > 5, `modules: ${modules}`);
});

test('gst/web.gresource.xml lists every module under its own path (served by websocketsink)', () => {
  const xml = fs.readFileSync(path.join(ROOT, 'gst/web.gresource.xml'), 'utf8');
  const listed = new Map([...xml.matchAll(/<file alias="([^"]+)">([^<]+)<\/file>/g)].map((m) => [m[1], m[2]]));
  for (const rel of moduleGraph().modules) {
    assert.equal(listed.get(rel), `../web/${rel}`, `${rel} in gst/web.gresource.xml`);
  }
  for (const page of ['index.html', 'notes-client.html']) assert.ok(listed.has(page));
  // and nothing listed is missing from web/
  for (const [alias, file] of listed) assert.ok(fs.existsSync(path.join(ROOT, 'gst', file)), `${alias}: ${file} exists`);
});

test('fmp4-player.js: same exports as before the split, importable without a browser', async () => {
  const m = await import('../../web/fmp4-player.js');
  assert.deepEqual(Object.keys(m).sort(), [
    'Fmp4Player', 'Fmp4PlayerElement', 'checkSupport', 'describeCodec', 'mediaSourceClass',
    'pageWebSocketUrl', 'parseFragment', 'parseInit', 'resolveWebSocketUrl',
  ]);
  assert.equal(typeof m.Fmp4Player, 'function');
  assert.ok(m.Fmp4Player.prototype instanceof EventTarget);
  assert.deepEqual(m.Fmp4PlayerElement.observedAttributes, ['src', 'target-latency', 'muted', 'autoplay', 'controls', 'stats', 'renderer', 'render-delay']);
});
