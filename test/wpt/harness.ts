// What the wpt runner serves besides wpt's own files: the test page, testharnessreport.js (hands
// the results to the runner), testdriver.js (bless() runs its callback) and helpers newer
// ai/resources/util.js versions define.

export interface WptTestResult {
  name: string;
  /** testharness.js: 0 PASS, 1 FAIL, 2 TIMEOUT, 3 NOTRUN, 4 PRECONDITION_FAILED. */
  status: number;
  message: string | null;
}

export interface WptFileResult {
  /** Harness status: 0 OK, 1 ERROR, 2 TIMEOUT, 3 PRECONDITION_FAILED. */
  status: number;
  message: string | null;
  tests: WptTestResult[];
}

export const STATUS_NAMES = ['PASS', 'FAIL', 'TIMEOUT', 'NOTRUN', 'PRECONDITION_FAILED'];

export const REPORT_JS = `add_completion_callback(function (tests, status) {
  window.__wptResults = { status: status.status, message: status.message,
    tests: tests.map(function (t) { return { name: t.name, status: t.status, message: t.message }; }) };
});`;

export const TESTDRIVER_JS = `window.test_driver = {
  bless: function (intent, action) { return Promise.resolve().then(function () { return typeof action === 'function' ? action() : undefined; }); },
};`;

export const UTIL_SHIM_JS = `if (typeof readStream === 'undefined') self.readStream = async (s) => (await Array.fromAsync(s)).join('');
if (typeof kTestPrompt2 === 'undefined') self.kTestPrompt2 = 'Please write another sentence.';`;

/** The page for one test file: testharness, our report and driver, util.js, the polyfill installed, then the test. */
export function testPage(file: string, maxResponseTokens: number): string {
  return `<!doctype html><meta charset=utf-8><title>${file}</title>
<script src="/wpt/resources/testharness.js"></script>
<script src="/wpt-runner/testharnessreport.js"></script>
<script src="/wpt-runner/testdriver.js"></script>
<script src="/wpt/ai/resources/util.js"></script>
<script src="/wpt-runner/util-shim.js"></script>
<script>setup({ explicit_done: true, explicit_timeout: true });</script>
<script type="module">
import { installPromptApi } from '/src/prompt-api/index.ts';
await installPromptApi({ force: true, maxResponseTokens: ${maxResponseTokens} });
const s = document.createElement('script');
s.src = '/wpt/ai/language_model/${file}';
s.onload = () => done();
document.head.append(s);
</script>`;
}
