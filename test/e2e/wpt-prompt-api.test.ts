// The Prompt API's web-platform-tests (wpt ai/language_model) against the polyfill in headless
// Chromium, one page per file: prints pass/fail counts per file and asserts that exactly the
// failures test/wpt/expectations.ts lists happen. The wpt files come from ../shared/wpt or
// $WGSERVE_WPT (test/wpt/README.md); without them the runner is skipped.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Browser } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPECTED_FAILURES } from '../wpt/expectations.js';
import { REPORT_JS, STATUS_NAMES, TESTDRIVER_JS, testPage, UTIL_SHIM_JS, type WptFileResult } from '../wpt/harness.js';
import { launchBrowser, startDevServer } from '../helpers/browser.js';
import { SHARED } from '../helpers/shared.js';

const WPT = resolve(process.env.WGSERVE_WPT ?? join(SHARED, 'wpt'));
const TESTS = join(WPT, 'ai/language_model');
const present = existsSync(join(WPT, 'resources/testharness.js')) && existsSync(TESTS);
const files = present ? readdirSync(TESTS).filter((f) => f.endsWith('.window.js')).sort() : [];
if (!present) console.warn(`wpt-prompt-api: skipped: no wpt checkout at ${WPT} (see test/wpt/README.md)`);

const OWN_FILES: Record<string, string> = { 'testharnessreport.js': REPORT_JS, 'testdriver.js': TESTDRIVER_JS, 'util-shim.js': UTIL_SHIM_JS };

describe.skipIf(!present)('web-platform-tests ai/language_model on the polyfill (headless Chromium)', () => {
  let server: ViteDevServer;
  let origin: string;
  let browser: Browser;
  const counts: string[] = [];
  beforeAll(async () => {
    ({ server, url: origin } = await startDevServer());
    browser = await launchBrowser();
  });
  afterAll(async () => {
    console.log(`wpt ai/language_model:\n${counts.join('\n')}`);
    await browser?.close();
    await server?.close();
  });

  it('runs the files the expectations name', () => {
    for (const file of Object.keys(EXPECTED_FAILURES)) expect(files).toContain(file);
  });

  it.each(files)('%s', { timeout: 900_000 }, async (file) => {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.route('**/wpt/**', (route) => {
      const path = new URL(route.request().url()).pathname.replace(/^\/wpt\//, '');
      const full = resolve(WPT, path);
      if (!full.startsWith(WPT) || !existsSync(full)) return route.fulfill({ status: 404, body: 'not found' });
      return route.fulfill({ body: readFileSync(full), contentType: 'text/javascript' });
    });
    await page.route('**/wpt-runner/**', (route) => {
      const name = new URL(route.request().url()).pathname.split('/').pop()!;
      return route.fulfill({ body: OWN_FILES[name] ?? '', contentType: 'text/javascript', status: name in OWN_FILES ? 200 : 404 });
    });
    await page.route('**/wpt-page.html', (route) => route.fulfill({ body: testPage(file, 24), contentType: 'text/html' }));
    try {
      await page.goto(`${origin}wpt-page.html`);
      await page.waitForFunction(() => (window as unknown as { __wptResults?: unknown }).__wptResults, null, { timeout: 840_000 });
      const result = await page.evaluate(() => (window as unknown as { __wptResults: WptFileResult }).__wptResults);
      const failed = result.tests.filter((t) => t.status !== 0);
      counts.push(`  ${file}: ${result.tests.length - failed.length}/${result.tests.length} passed`);
      for (const t of failed) counts.push(`    ${STATUS_NAMES[t.status]} ${t.name}: ${t.message}`);
      expect(result.status, `harness: ${result.message}; page errors: ${pageErrors.join('; ')}`).toBe(0);
      expect(result.tests.length).toBeGreaterThan(0);
      const expected = Object.keys(EXPECTED_FAILURES[file] ?? {}).sort();
      const why = failed.map((t) => `${t.name}: ${STATUS_NAMES[t.status]} ${t.message}`).join('\n');
      expect(failed.map((t) => t.name).sort(), why).toEqual(expected);
    } finally {
      await page.close();
    }
  });
});
