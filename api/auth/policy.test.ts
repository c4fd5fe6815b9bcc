/** Route actions and role checks. */
import { describe, expect, it } from 'vitest';
import { requireRole, routeAction } from './policy.js';

describe('routeAction', () => {
  it('classifies public, read, write and admin routes', () => {
    expect(routeAction('GET', '/v1/identities/version')).toBe('public');
    expect(routeAction('GET', '/v1/openapi.json')).toBe('public');
    expect(routeAction('GET', '/v1/volumes')).toBe('read');
    expect(routeAction('POST', '/v1/volumes/inspectwithfilters')).toBe('read');
    expect(routeAction('POST', '/v1/volumes/snapshots/v1/filters')).toBe('read');
    expect(routeAction('POST', '/v1/cloudbackups/enumerate/filters')).toBe('read');
    expect(routeAction('POST', '/v1/cloudbackups/status')).toBe('read');
    expect(routeAction('POST', '/v1/volumes')).toBe('write');
    expect(routeAction('POST', '/v1/volumes/snapshots')).toBe('write');
    expect(routeAction('DELETE', '/v1/volumes/x')).toBe('write');
    expect(routeAction('PUT', '/v1/ownership/volumes/x')).toBe('write');
    expect(routeAction('GET', '/v1/keys')).toBe('admin');
    expect(routeAction('POST', '/v1/keys/rotate')).toBe('admin');
    expect(routeAction('POST', '/v1/schedulepolicies')).toBe('write');
    expect(routeAction('GET', '/v1/schedulepolicies')).toBe('read');
  });
});

describe('requireRole', () => {
  const p = (roles: string[]) => ({ sub: 's', roles, groups: [] });
  it('lets admins do all, users read and write, viewers read, others nothing', () => {
    expect(() => requireRole(p(['system.admin']), 'admin')).not.toThrow();
    expect(() => requireRole(p(['system.user']), 'admin')).toThrow(/not a system.admin/);
    expect(() => requireRole(p(['system.user']), 'write')).not.toThrow();
    expect(() => requireRole(p(['system.view']), 'write')).toThrow(/may only read/);
    expect(() => requireRole(p(['system.view']), 'read')).not.toThrow();
    expect(() => requireRole(p(['custom.role']), 'read')).toThrow(/has none of the roles/);
    expect(() => requireRole(p([]), 'public')).not.toThrow();
  });
});
