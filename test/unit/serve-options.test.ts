// `wgserve serve` flags to engine options: the session bounds (pages, count, idle unpin and
// expiry in seconds, 0 meaning never) and their defaults, bad values named by flag.
import { describe, expect, it } from 'vitest';
import { engineOptionsOf, SERVE_SESSION_EXPIRE_AFTER_S } from '../../src/cli/serve.js';

describe('serve session flags', () => {
  it('defaults: engine defaults for pages, count and unpinning; sessions expire after an hour', () => {
    const o = engineOptionsOf({});
    expect(o.maxSessionPages).toBeUndefined();
    expect(o.maxSessions).toBeUndefined();
    expect(o.sessionUnpinAfterMs).toBeUndefined();
    expect(SERVE_SESSION_EXPIRE_AFTER_S).toBe(3600);
    expect(o.sessionExpireAfterMs).toBe(3_600_000);
  });

  it('each flag sets its option; seconds become milliseconds and 0 means never', () => {
    const o = engineOptionsOf({ 'max-session-pages': '40', 'max-sessions': '8', 'session-unpin-after': '2.5', 'session-expire-after': '0' });
    expect(o).toMatchObject({ maxSessionPages: 40, maxSessions: 8, sessionUnpinAfterMs: 2500, sessionExpireAfterMs: Infinity });
    expect(engineOptionsOf({ 'session-unpin-after': '0', 'max-session-pages': '0' })).toMatchObject({ sessionUnpinAfterMs: Infinity, maxSessionPages: 0 });
  });

  it('bad values are named by their flag', () => {
    expect(() => engineOptionsOf({ 'max-session-pages': '-1' })).toThrow('--max-session-pages must be an integer >= 0, got "-1"');
    expect(() => engineOptionsOf({ 'max-sessions': '0' })).toThrow('--max-sessions must be an integer >= 1, got "0"');
    expect(() => engineOptionsOf({ 'max-sessions': '2.5' })).toThrow(/--max-sessions must be an integer/);
    expect(() => engineOptionsOf({ 'session-unpin-after': 'soon' })).toThrow('--session-unpin-after must be a number >= 0, got "soon"');
    expect(() => engineOptionsOf({ 'session-expire-after': '-5' })).toThrow(/--session-expire-after must be a number >= 0/);
  });
});

describe('serve workflow-policy flags', () => {
  it('default adaptive; seconds become milliseconds; "adaptive" passes through; bad values named', () => {
    const o = engineOptionsOf({});
    expect(o.starvationMs).toBeUndefined();
    expect(o.retentionTtlMs).toBeUndefined();
    expect(engineOptionsOf({ 'starvation-after': '30', 'workflow-ttl': '2.5' })).toMatchObject({ starvationMs: 30_000, retentionTtlMs: 2500 });
    expect(engineOptionsOf({ 'starvation-after': 'adaptive', 'workflow-ttl': 'adaptive' })).toMatchObject({ starvationMs: 'adaptive', retentionTtlMs: 'adaptive' });
    expect(engineOptionsOf({ 'workflow-ttl': '0' }).retentionTtlMs).toBe(0);
    expect(() => engineOptionsOf({ 'starvation-after': '0' })).toThrow(/--starvation-after must be a number >= 0.001/);
    expect(() => engineOptionsOf({ 'workflow-ttl': 'soon' })).toThrow('--workflow-ttl must be a number >= 0, got "soon"');
  });
});
