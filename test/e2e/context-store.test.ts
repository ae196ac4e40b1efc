// The context store on IndexedDB in headless Chromium: records survive a reload, a record
// corrupted in the database is dropped with a warning (never returned), the byte budget evicts
// least recently used records but not those of a kept context (kept across a reload in the
// 'kept' object store), and two tabs writing the same store at once leave it whole.
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrowserSession, type BrowserSession } from '../helpers/browser.js';

describe('context store on IndexedDB (headless Chromium)', () => {
  let session: BrowserSession;
  let context: BrowserContext;
  let page: Page;
  let url = '';
  const open = async (p: Page) => {
    await p.goto(url);
    await p.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
  };
  beforeAll(async () => {
    session = await openBrowserSession();
    context = session.context;
    url = `${session.origin}/test/e2e/pages/store.html`;
    page = await context.newPage();
    await open(page);
  });
  afterAll(() => session?.close());

  it('keeps pages across a reload', async () => {
    await page.evaluate(() => window.st.open());
    await page.evaluate(() => window.st.clear());
    await page.evaluate(() => window.st.put(0, 6));
    await open(page);
    await page.evaluate(() => window.st.open());
    expect(await page.evaluate(() => window.st.usage().records)).toBe(6);
    expect(await page.evaluate(() => window.st.check(0, 7))).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'missing']);
    expect(await page.evaluate(() => window.st.warnings())).toEqual([]);
  });

  it('drops a record corrupted in the database, with a warning and a metric', async () => {
    await page.evaluate(() => window.st.corrupt(2, 500));
    expect(await page.evaluate(() => window.st.check(0, 6))).toEqual(['ok', 'ok', 'missing', 'ok', 'ok', 'ok']);
    expect(await page.evaluate(() => window.st.warnings())).toEqual(['record-dropped:corrupt']);
    expect(await page.evaluate(() => window.st.metrics().recordsDropped)).toBe(1);
    expect(await page.evaluate(() => window.st.keys())).not.toContain('0000000000000002');
  });

  it('keeps to a byte budget, least recently used first', async () => {
    await page.evaluate(() => window.st.clear());
    const one = await page.evaluate(async () => {
      await window.st.put(100, 101);
      return window.st.usage().bytes;
    });
    await page.evaluate((max) => window.st.open(max), 3 * one);
    await page.evaluate(() => window.st.put(101, 103));
    await page.evaluate(() => window.st.check(100, 101)); // 100 used again: 101 goes first
    await page.evaluate(() => window.st.put(103, 104));
    expect(await page.evaluate(() => window.st.keys())).toEqual(['0000000000000066', '0000000000000064', '0000000000000067']);
    expect(await page.evaluate(() => window.st.usage().bytes)).toBeLessThanOrEqual(3 * one);
  });

  it('a kept context stays under the budget and across a reload, until released', async () => {
    await page.evaluate(() => window.st.open());
    await page.evaluate(() => window.st.clear());
    const one = await page.evaluate(async () => {
      await window.st.put(400, 401);
      return window.st.usage().bytes;
    });
    await page.evaluate((max) => window.st.open(max), 4 * one);
    await page.evaluate(() => window.st.put(300, 303));
    const id = await page.evaluate(() => window.st.keep(300, 303));
    await page.evaluate(() => window.st.put(303, 310));
    const kept = ['000000000000012c', '000000000000012d', '000000000000012e'];
    expect((await page.evaluate(() => window.st.keys())).sort()).toEqual([...kept, '0000000000000135']);
    await open(page);
    await page.evaluate((max) => window.st.open(max), 4 * one);
    expect(await page.evaluate(() => window.st.kept())).toEqual([id]);
    await page.evaluate(() => window.st.put(310, 312));
    expect((await page.evaluate(() => window.st.keys())).sort()).toEqual([...kept, '0000000000000137']);
    expect(await page.evaluate((i) => window.st.release(i), id)).toBe(true);
    await page.evaluate(() => window.st.put(312, 315));
    expect(await page.evaluate(() => window.st.keys())).not.toContain(kept[0]);
    await open(page);
    await page.evaluate(() => window.st.open());
    expect(await page.evaluate(() => window.st.kept())).toEqual([]);
  });

  it('two tabs writing at once leave every record whole', async () => {
    await page.evaluate(() => window.st.open());
    await page.evaluate(() => window.st.clear());
    const other = await context.newPage();
    await open(other);
    await other.evaluate(() => window.st.open());
    // Overlapping ranges: both tabs write pages 20..39 at the same time.
    await Promise.all([page.evaluate(() => window.st.put(0, 40)), other.evaluate(() => window.st.put(20, 60))]);
    await page.evaluate(() => window.st.open());
    expect(await page.evaluate(() => window.st.usage().records)).toBe(60);
    const states = await page.evaluate(() => window.st.check(0, 60));
    expect(states.filter((s) => s !== 'ok')).toEqual([]);
    await other.close();
  });
});
