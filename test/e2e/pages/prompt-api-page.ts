// Test page: the Prompt API polyfill installed on a page whose engine runs in a Web Worker
// (test/e2e/prompt-api.test.ts drives it through Playwright).
import { installPromptApi } from '../../../src/prompt-api/index.js';

declare global {
  interface Window {
    pa: { hadNative: boolean; installedIsGlobal: boolean };
  }
}

const hadNative = 'LanguageModel' in window;
const installed = await installPromptApi({ force: true, maxResponseTokens: 16 });
window.pa = { hadNative, installedIsGlobal: installed === (window as unknown as { LanguageModel: unknown }).LanguageModel };
document.getElementById('status')!.textContent = 'ready';
