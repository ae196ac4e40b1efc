// Headless Debian Chromium with WebGPU on SwiftShader (playwright-core), and the Vite dev server.
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';
import { REPO } from './shared.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
];

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}

export async function startDevServer(): Promise<{ server: ViteDevServer; url: string }> {
  const server = await createServer({ root: REPO, configFile: `${REPO}/vite.config.ts`, logLevel: 'error', server: { port: 0, host: '127.0.0.1' } });
  await server.listen();
  const addr = server.httpServer?.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { server, url: `http://127.0.0.1:${port}/` };
}

export interface BrowserSession {
  server: ViteDevServer;
  /** http://127.0.0.1:port, no trailing slash. */
  origin: string;
  browser: Browser;
  /** One context: its pages share storage (Cache Storage, Service Workers) as tabs of one profile do. */
  context: BrowserContext;
  close(): Promise<void>;
}

/** The dev server and a browser with one context, for tests that open several tabs of one origin. */
export async function openBrowserSession(): Promise<BrowserSession> {
  const { server, url } = await startDevServer();
  const browser = await launchBrowser();
  const context = await browser.newContext();
  return {
    server,
    origin: url.replace(/\/$/, ''),
    browser,
    context,
    close: async () => {
      await browser.close();
      await server.close();
    },
  };
}

/**
 * The dev server and a browser profile on disk (launchPersistentContext): unlike the default
 * off-the-record context, its storage enforces quota overrides (Storage.overrideQuotaForOrigin).
 */
export async function openPersistentSession(profileDir: string): Promise<Omit<BrowserSession, 'browser'>> {
  const { server, url } = await startDevServer();
  const context = await chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, args: ARGS });
  return {
    server,
    origin: url.replace(/\/$/, ''),
    context,
    close: async () => {
      await context.close();
      await server.close();
    },
  };
}
